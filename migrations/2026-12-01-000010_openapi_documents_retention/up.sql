-- The publisher keeps only the latest MCPO_OPENAPI_VERSIONS_KEPT versions of
-- the platform document (each is the whole document). Push records stay:
-- they are the history of each target (and its failed attempts), also for
-- versions no longer stored.
ALTER TABLE openapi_pushes DROP CONSTRAINT openapi_pushes_version_fkey;
