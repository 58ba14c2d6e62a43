"""The PAI-EAS dialect: `/api/v2/services` and `/api/v2/app_services` as `alibabacloud_eas20210701` calls them,
signed with ACS3-HMAC-SHA256 as `alibabacloud_tea_openapi` signs (docs/cloud-api.md, section PAI-EAS)."""
