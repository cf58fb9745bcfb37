-- The long texts and JSON of a row (prompt, response, attributes...) compressed with lz4 instead of pglz.
-- A stored row is ~4.5 KB, past TOAST's 2 KB threshold, so every row's long values are compressed; with
-- pglz that was a third of the Postgres backend's CPU time per inserted row (bench/README.md, issue 15),
-- and lz4 compresses several times faster (and decompresses faster for the dashboards) at a similar ratio.
-- Only the compression method of new values changes: no column is added, moved or rewritten, and values
-- already stored stay readable as they are. Partitions created later inherit the setting from the parent.
-- A server built without lz4 keeps pglz (the statement is skipped with a notice).
DO $$
BEGIN
  ALTER TABLE ai_interaction_traces
    ALTER COLUMN prompt_content SET COMPRESSION lz4,
    ALTER COLUMN system_prompt SET COMPRESSION lz4,
    ALTER COLUMN response_content SET COMPRESSION lz4,
    ALTER COLUMN error_message SET COMPRESSION lz4,
    ALTER COLUMN parameters SET COMPRESSION lz4,
    ALTER COLUMN attributes SET COMPRESSION lz4,
    ALTER COLUMN resource SET COMPRESSION lz4;
  ALTER TABLE ai_interaction_events
    ALTER COLUMN content SET COMPRESSION lz4,
    ALTER COLUMN attributes SET COMPRESSION lz4,
    ALTER COLUMN text_content SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 compression is not available in this server: long values stay compressed with pglz';
END
$$;
