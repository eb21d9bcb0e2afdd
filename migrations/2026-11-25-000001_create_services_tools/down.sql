DROP TABLE tools;
DROP TABLE tool_schemas;
DROP TABLE mcp_services;
