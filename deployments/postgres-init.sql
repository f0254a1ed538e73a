-- The production profile's PostgreSQL (docker-compose.yml): the Prefect server's database beside the engine's.
CREATE DATABASE prefect OWNER agentparty;
