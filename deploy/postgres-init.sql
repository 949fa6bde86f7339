-- The redialer store (call records, suppression list) beside Temporal's own databases.
CREATE ROLE redialer LOGIN PASSWORD 'redialer';
CREATE DATABASE redialer OWNER redialer;
