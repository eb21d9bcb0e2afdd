DROP TABLE openapi_pushes;
