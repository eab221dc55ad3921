-- docker-compose.yml: the registry keeps its schemas in PostgreSQL, as the native stack does.
CREATE DATABASE registry OWNER eventpipe;
