DROP TABLE openapi_documents;
