-- An API token may expire (ApiTokenRecord::expires_at): after that it opens
-- nothing and no longer counts towards the reseller's bound. NULL: never.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
