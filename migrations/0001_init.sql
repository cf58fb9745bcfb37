-- 0001_init: interaction rows, Postgres rejects, GenAI events, and the daily partition helper.
--
-- Applied by the gateway's migration runner (gateway/store/migrate.c) in one transaction, under an
-- advisory lock, and recorded in schema_migrations (which the runner owns). Time is UTC everywhere:
-- partitions cover [day 00:00 UTC, day+1 00:00 UTC). No default partition: the writer creates the
-- partition of every day in a batch before inserting (gw_ensure_partition), and a maintenance loop
-- creates them ahead and drops them after retention_days.

-- One row per GenAI span (DESIGN §3, §6). Column order = gw_record_fields in gateway/normalize/record.c,
-- which the writer's COPY relies on; created_at is set here.
CREATE TABLE ai_interaction_traces (
  trace_id text NOT NULL CHECK (trace_id ~ '^[0-9a-f]{32}$'),
  span_id text NOT NULL CHECK (span_id ~ '^[0-9a-f]{16}$'),
  parent_span_id text CHECK (parent_span_id ~ '^[0-9a-f]{16}$'),
  trace_version text,
  service_name text,
  scope_name text,
  span_name text,
  operation text,
  provider text,
  request_model text,
  response_model text,
  model_id text,
  session_id text,
  user_id text,
  input_tokens int,
  output_tokens int,
  cache_read_tokens int,
  cache_write_tokens int,
  reasoning_tokens int,
  total_tokens int,
  input_cost_usd numeric,
  output_cost_usd numeric,
  total_cost_usd numeric,
  cost_source text CHECK (cost_source IN ('computed', 'reported')),
  reported_cost_usd numeric,
  price_id text,
  dialect text,
  enrichment_flags text[],
  start_time timestamptz NOT NULL,
  end_time timestamptz,
  duration_ms double precision,
  first_token_latency_ms double precision,
  streaming_enabled boolean,
  status text CHECK (status IN ('ok', 'error', 'unset')),
  error_code text,
  error_message text,
  finish_reasons text[],
  prompt_content text,
  system_prompt text,
  response_content text,
  prompt_hash text,
  parameters jsonb,
  attributes jsonb,
  resource jsonb,
  redaction_count int,
  redacted_kinds text[],
  created_at timestamptz NOT NULL DEFAULT now(),
  -- (trace_id, span_id) identifies a span; start_time is in the key because partitioning requires it,
  -- and a re-sent span carries the same start_time.
  PRIMARY KEY (trace_id, span_id, start_time)
) PARTITION BY RANGE (start_time);

-- Dashboard queries: by time, and by model, service, session or user over a time range.
CREATE INDEX ai_interaction_traces_start_time_idx ON ai_interaction_traces (start_time);
CREATE INDEX ai_interaction_traces_model_id_idx ON ai_interaction_traces (model_id, start_time);
CREATE INDEX ai_interaction_traces_service_name_idx ON ai_interaction_traces (service_name, start_time);
CREATE INDEX ai_interaction_traces_session_id_idx ON ai_interaction_traces (session_id, start_time)
  WHERE session_id IS NOT NULL;
CREATE INDEX ai_interaction_traces_user_id_idx ON ai_interaction_traces (user_id, start_time)
  WHERE user_id IS NOT NULL;

-- Records Postgres refused for their data (DESIGN §6): kept here with the error, never retried.
CREATE TABLE ai_interaction_rejects (
  id bigserial PRIMARY KEY,
  trace_id text,
  span_id text,
  record jsonb NOT NULL,
  error text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_interaction_rejects_created_at_idx ON ai_interaction_rejects (created_at);

-- GenAI event records (span events and OTLP log records carrying gen_ai.* event names), redacted.
-- Written by the logs path; same daily partitioning and retention as the interactions.
CREATE TABLE ai_interaction_events (
  trace_id text NOT NULL CHECK (trace_id ~ '^[0-9a-f]{32}$'),
  span_id text NOT NULL CHECK (span_id ~ '^[0-9a-f]{16}$'),
  time timestamptz NOT NULL,
  event_name text NOT NULL,
  seq int NOT NULL DEFAULT 0,
  role text,
  content text,
  attributes jsonb,
  redaction_count int,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (trace_id, span_id, event_name, time, seq)
) PARTITION BY RANGE (time);

-- Create the partition of tbl covering the UTC day `day`, named <tbl>_pYYYYMMDD, unless it exists.
-- Safe when several writers race for the same day: the loser's duplicate_table (or the catalog
-- unique_violation a concurrent CREATE can raise) is swallowed. Returns true when it created one.
CREATE FUNCTION gw_ensure_partition(tbl text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  part text := tbl || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, tbl,
                   to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
  EXCEPTION WHEN duplicate_table OR unique_violation THEN
    RETURN false;
  END;
  RETURN true;
END
$$;
