-- Not checked against the rows already there: pushes of pruned versions stay.
ALTER TABLE openapi_pushes
    ADD CONSTRAINT openapi_pushes_version_fkey
    FOREIGN KEY (version) REFERENCES openapi_documents (version) NOT VALID;
