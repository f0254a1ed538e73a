"""Workflow definitions as Prefect deployments: schedules, event triggers, the Kafka bridge, ``prefect.yaml``.

``build.deploy_workflows`` is what ``agentparty deploy`` calls; ``naming`` says
how a definition's deployment is named, for the CLI, the API's webhooks and tests.
"""
