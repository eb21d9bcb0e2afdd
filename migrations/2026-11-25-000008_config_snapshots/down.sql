DROP TABLE config_snapshots;
