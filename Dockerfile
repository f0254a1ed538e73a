# The engine's image for the `production` profile of docker-compose.yml (workers and the API).
# torch comes from PyTorch's CPU index first: from PyPI, torch==2.13.0 on Linux pulls gigabytes of CUDA wheels.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 AGENTPARTY_HOME=/var/lib/agentparty
COPY . /src
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -c /src/constraints.txt /src \
 && useradd --system --home-dir /var/lib/agentparty --create-home agentparty
USER agentparty
WORKDIR /var/lib/agentparty
ENTRYPOINT ["agentparty"]
