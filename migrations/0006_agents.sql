-- 0006_agents: agent and workflow attribution, prompt template versions and the SimHash of the prompt
-- (issue 16, items 1, 3 and 4).
--
-- ai_interaction_traces gains:
--   agent_name, workflow_name  the agent and workflow a call ran under (README "Agents, workflows and
--                              prompts"): the span's own from whichever dialect names them, else the nearest
--                              ancestor's in its trace, filled by gw_fill_agents below, whichever order the
--                              spans arrive in; enrichment_flags then holds agent_inherited /
--                              workflow_inherited.
--   prompt_name, prompt_version the prompt template the call used (Langfuse, OpenInference, Traceloop).
--   prompt_simhash bit(64)     a SimHash of the prompt text, taken before redaction like prompt_hash
--                              (gateway/normalize/simhash.h has the algorithm). bit(64) and not bigint:
--                              PostgreSQL 15 has bit_count() for bit and bytea only, so near-duplicates are
--                              simply bit_count(a.prompt_simhash # b.prompt_simhash) <= k.
-- trace_metrics_hourly gains the four names as dimensions ('' when unknown, like the others); its key and
-- gw_rollup_rebuild follow.

ALTER TABLE ai_interaction_traces
  ADD COLUMN agent_name text,
  ADD COLUMN workflow_name text,
  ADD COLUMN prompt_name text,
  ADD COLUMN prompt_version text,
  ADD COLUMN prompt_simhash bit(64);

-- Per agent and per workflow over time, and the repeated prompts of an hour.
CREATE INDEX ai_interaction_traces_agent_idx ON ai_interaction_traces (agent_name, start_time)
  WHERE agent_name IS NOT NULL;
CREATE INDEX ai_interaction_traces_workflow_idx ON ai_interaction_traces (workflow_name, start_time)
  WHERE workflow_name IS NOT NULL;
CREATE INDEX ai_interaction_traces_phash_idx ON ai_interaction_traces (start_time, prompt_hash)
  WHERE prompt_hash IS NOT NULL;

ALTER TABLE trace_metrics_hourly
  ADD COLUMN agent_name text NOT NULL DEFAULT '',
  ADD COLUMN workflow_name text NOT NULL DEFAULT '',
  ADD COLUMN prompt_name text NOT NULL DEFAULT '',
  ADD COLUMN prompt_version text NOT NULL DEFAULT '';
ALTER TABLE trace_metrics_hourly DROP CONSTRAINT trace_metrics_hourly_pkey;
ALTER TABLE trace_metrics_hourly ADD PRIMARY KEY
  (hour_bucket, service_name, provider, model_id, operation, agent_name, workflow_name, prompt_name, prompt_version);
CREATE INDEX trace_metrics_hourly_agent_idx ON trace_metrics_hourly (agent_name, hour_bucket) WHERE agent_name <> '';

-- The view keeps its columns in place (grants on it survive) and shows the new dimensions after them.
CREATE OR REPLACE VIEW trace_metrics_hourly_v AS
SELECT m.hour_bucket, m.service_name, m.provider, m.model_id, m.operation, m.total_requests,
       m.successful_requests, m.error_requests, m.total_input_tokens, m.total_output_tokens,
       m.total_cache_read_tokens, m.total_cache_write_tokens, m.total_reasoning_tokens, m.total_cost,
       m.sum_duration_ms, m.sum_first_token_latency_ms, m.first_token_count, m.duration_histogram, m.updated_at,
       m.sum_duration_ms / nullif((SELECT sum(x) FROM unnest(m.duration_histogram) AS x), 0)
         AS avg_duration_ms,
       m.sum_first_token_latency_ms / nullif(m.first_token_count, 0) AS avg_first_token_latency_ms,
       (m.total_input_tokens + m.total_output_tokens)::double precision / nullif(m.total_requests, 0)
         AS avg_tokens_per_request,
       gw_hist_quantile(m.duration_histogram, 0.50) AS p50_duration_ms,
       gw_hist_quantile(m.duration_histogram, 0.95) AS p95_duration_ms,
       gw_hist_quantile(m.duration_histogram, 0.99) AS p99_duration_ms,
       m.agent_name, m.workflow_name, m.prompt_name, m.prompt_version
FROM trace_metrics_hourly m;

-- As in 0002, with the four new dimensions.
CREATE OR REPLACE FUNCTION gw_rollup_rebuild(from_ts timestamptz, to_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  h0 timestamptz := date_trunc('hour', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  h1 timestamptz := date_trunc('hour', to_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  n bigint;
BEGIN
  IF from_ts IS NULL OR to_ts IS NULL OR to_ts <= from_ts THEN
    RETURN 0;
  END IF;
  IF h1 < to_ts THEN
    h1 := h1 + interval '1 hour';
  END IF;
  DELETE FROM trace_metrics_hourly WHERE hour_bucket >= h0 AND hour_bucket < h1;
  INSERT INTO trace_metrics_hourly (hour_bucket, service_name, provider, model_id, operation,
    agent_name, workflow_name, prompt_name, prompt_version,
    total_requests, successful_requests, error_requests, total_input_tokens, total_output_tokens,
    total_cache_read_tokens, total_cache_write_tokens, total_reasoning_tokens, total_cost,
    sum_duration_ms, sum_first_token_latency_ms, first_token_count, duration_histogram, updated_at)
  SELECT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
         coalesce(service_name, ''), coalesce(provider, ''), coalesce(model_id, ''), coalesce(operation, ''),
         coalesce(agent_name, ''), coalesce(workflow_name, ''), coalesce(prompt_name, ''),
         coalesce(prompt_version, ''),
         count(*), count(*) FILTER (WHERE coalesce(status, '') <> 'error'),
         count(*) FILTER (WHERE status = 'error'),
         coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
         coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
         coalesce(sum(reasoning_tokens), 0), coalesce(sum(total_cost_usd), 0),
         coalesce(sum(duration_ms), 0), coalesce(sum(first_token_latency_ms), 0),
         count(first_token_latency_ms),
         ARRAY[count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 1),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 2),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 3),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 4),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 5),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 6),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 7),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 8),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 9),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 10),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 11),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 12),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 13),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 14),
               count(*) FILTER (WHERE gw_duration_bucket(duration_ms) = 15)],
         now()
  FROM ai_interaction_traces
  WHERE start_time >= h0 AND start_time < h1
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Fill agent_name / workflow_name of the rows of these traces (rows starting in [from_ts, to_ts)) that
-- have none from their nearest ancestor that has one: the parent, else the parent's parent, and so on
-- (at most 64 levels; parent links that loop stop there). A chain that reaches a span not stored yet
-- stops there: the row stays NULL until that span arrives, and then the fill run for its batch completes
-- it, so the final rows do not depend on the order the spans arrived in. Each name is inherited on its
-- own (a CHAIN span under an agent takes the agent and keeps its own workflow).
-- Rows are only ever filled, never changed: an ancestor's name is final once set, so a fill that ran
-- earlier can never be wrong later. The rollups move with the rows in the same statement: each filled
-- row is taken out of the group of its old names and added to the group of its new ones, so
-- trace_metrics_hourly stays what gw_rollup_rebuild computes. A row is filled only if it still has the
-- names the statement read (a concurrent fill of the same row wins, and is counted once), and only when
-- the rollups' key stays within 2600 bytes. Run by the writer right after each batch's commit (a span
-- and its ancestor stored at the same moment by two gateways see each other only then; a replayed batch
-- runs it again), and safe to run any time: `SELECT gw_fill_agents(ARRAY['<trace id>'], from, to)`.
-- Returns the number of rows filled.
CREATE FUNCTION gw_fill_agents(tids text[], from_ts timestamptz, to_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  hours timestamptz[];
BEGIN
  WITH RECURSIVE r AS (
    -- one trace at a time through the (trace_id, span_id, start_time) key (as the writer's session fill)
    SELECT x.* FROM (SELECT DISTINCT t FROM unnest(tids) AS t) k CROSS JOIN LATERAL (
      SELECT a.trace_id, a.span_id, a.parent_span_id, a.start_time, a.agent_name, a.workflow_name
      FROM ai_interaction_traces a
      WHERE a.trace_id = k.t AND a.start_time >= from_ts AND a.start_time < to_ts OFFSET 0) x
  ), par AS (
    -- one row per span (a span re-sent with another start time is two rows): the parent to walk to
    SELECT DISTINCT ON (trace_id, span_id) trace_id, span_id, parent_span_id, agent_name, workflow_name
    FROM r ORDER BY trace_id, span_id, start_time
  ), walk AS (
    SELECT r.trace_id, r.span_id, r.start_time, r.parent_span_id AS up, r.agent_name AS agent,
           r.workflow_name AS workflow, 0 AS depth
    FROM r WHERE (r.agent_name IS NULL OR r.workflow_name IS NULL) AND r.parent_span_id IS NOT NULL
    UNION ALL
    SELECT w.trace_id, w.span_id, w.start_time, p.parent_span_id, coalesce(w.agent, p.agent_name),
           coalesce(w.workflow, p.workflow_name), w.depth + 1
    FROM walk w JOIN par p ON p.trace_id = w.trace_id AND p.span_id = w.up
    WHERE (w.agent IS NULL OR w.workflow IS NULL) AND w.depth < 64
  ), found AS (
    SELECT DISTINCT ON (trace_id, span_id, start_time) trace_id, span_id, start_time, agent, workflow
    FROM walk ORDER BY trace_id, span_id, start_time, depth DESC
  ), todo AS (
    SELECT r.trace_id, r.span_id, r.start_time, r.agent_name AS old_agent, r.workflow_name AS old_workflow,
           coalesce(r.agent_name, f.agent) AS agent, coalesce(r.workflow_name, f.workflow) AS workflow
    FROM found f JOIN r USING (trace_id, span_id, start_time)
    WHERE (r.agent_name IS NULL AND f.agent IS NOT NULL) OR (r.workflow_name IS NULL AND f.workflow IS NOT NULL)
  ), upd AS (
    UPDATE ai_interaction_traces a
    SET agent_name = todo.agent, workflow_name = todo.workflow,
        enrichment_flags = coalesce(a.enrichment_flags, '{}')
          || CASE WHEN todo.old_agent IS NULL AND todo.agent IS NOT NULL THEN '{agent_inherited}'::text[] ELSE '{}' END
          || CASE WHEN todo.old_workflow IS NULL AND todo.workflow IS NOT NULL THEN '{workflow_inherited}'::text[] ELSE '{}' END
    FROM todo
    WHERE a.trace_id = todo.trace_id AND a.span_id = todo.span_id AND a.start_time = todo.start_time
      AND a.start_time >= from_ts AND a.start_time < to_ts
      AND a.agent_name IS NOT DISTINCT FROM todo.old_agent AND a.workflow_name IS NOT DISTINCT FROM todo.old_workflow
      AND octet_length(coalesce(a.service_name, '')) + octet_length(coalesce(a.provider, ''))
          + octet_length(coalesce(a.model_id, '')) + octet_length(coalesce(a.operation, ''))
          + octet_length(coalesce(todo.agent, '')) + octet_length(coalesce(todo.workflow, ''))
          + octet_length(coalesce(a.prompt_name, '')) + octet_length(coalesce(a.prompt_version, '')) <= 2600
    RETURNING a.start_time, a.service_name, a.provider, a.model_id, a.operation, a.prompt_name, a.prompt_version,
              a.status, a.input_tokens, a.output_tokens, a.cache_read_tokens, a.cache_write_tokens,
              a.reasoning_tokens, a.total_cost_usd, a.duration_ms, a.first_token_latency_ms,
              todo.old_agent, todo.old_workflow, todo.agent, todo.workflow
  ), d AS (
    SELECT -1 AS s, upd.*, old_agent AS k_agent, old_workflow AS k_workflow FROM upd
    UNION ALL
    SELECT 1, upd.*, agent, workflow FROM upd
  ), roll AS (
    INSERT INTO trace_metrics_hourly AS t (hour_bucket, service_name, provider, model_id, operation,
      agent_name, workflow_name, prompt_name, prompt_version,
      total_requests, successful_requests, error_requests, total_input_tokens, total_output_tokens,
      total_cache_read_tokens, total_cache_write_tokens, total_reasoning_tokens, total_cost,
      sum_duration_ms, sum_first_token_latency_ms, first_token_count, duration_histogram, updated_at)
    SELECT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           coalesce(service_name, ''), coalesce(provider, ''), coalesce(model_id, ''), coalesce(operation, ''),
           coalesce(k_agent, ''), coalesce(k_workflow, ''), coalesce(prompt_name, ''), coalesce(prompt_version, ''),
           sum(s), coalesce(sum(s) FILTER (WHERE coalesce(status, '') <> 'error'), 0),
           coalesce(sum(s) FILTER (WHERE status = 'error'), 0),
           coalesce(sum(s * input_tokens), 0), coalesce(sum(s * output_tokens), 0),
           coalesce(sum(s * cache_read_tokens), 0), coalesce(sum(s * cache_write_tokens), 0),
           coalesce(sum(s * reasoning_tokens), 0), coalesce(sum(s * total_cost_usd), 0),
           coalesce(sum(s * duration_ms), 0), coalesce(sum(s * first_token_latency_ms), 0),
           coalesce(sum(s) FILTER (WHERE first_token_latency_ms IS NOT NULL), 0),
           ARRAY[coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 1), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 2), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 3), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 4), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 5), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 6), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 7), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 8), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 9), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 10), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 11), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 12), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 13), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 14), 0),
                 coalesce(sum(s) FILTER (WHERE gw_duration_bucket(duration_ms) = 15), 0)],
           now()
    FROM d GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ON CONFLICT (hour_bucket, service_name, provider, model_id, operation, agent_name, workflow_name, prompt_name,
                 prompt_version) DO UPDATE SET
      total_requests = t.total_requests + EXCLUDED.total_requests,
      successful_requests = t.successful_requests + EXCLUDED.successful_requests,
      error_requests = t.error_requests + EXCLUDED.error_requests,
      total_input_tokens = t.total_input_tokens + EXCLUDED.total_input_tokens,
      total_output_tokens = t.total_output_tokens + EXCLUDED.total_output_tokens,
      total_cache_read_tokens = t.total_cache_read_tokens + EXCLUDED.total_cache_read_tokens,
      total_cache_write_tokens = t.total_cache_write_tokens + EXCLUDED.total_cache_write_tokens,
      total_reasoning_tokens = t.total_reasoning_tokens + EXCLUDED.total_reasoning_tokens,
      total_cost = t.total_cost + EXCLUDED.total_cost,
      sum_duration_ms = t.sum_duration_ms + EXCLUDED.sum_duration_ms,
      sum_first_token_latency_ms = t.sum_first_token_latency_ms + EXCLUDED.sum_first_token_latency_ms,
      first_token_count = t.first_token_count + EXCLUDED.first_token_count,
      duration_histogram = gw_hist_add(t.duration_histogram, EXCLUDED.duration_histogram),
      updated_at = now()
    RETURNING 1
  )
  SELECT count(*) / 2, array_agg(DISTINCT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
  INTO n, hours FROM d;
  IF n > 0 THEN
    -- a group whose every row moved away
    DELETE FROM trace_metrics_hourly WHERE hour_bucket = ANY (hours) AND total_requests = 0;
  END IF;
  RETURN n;
END
$$;

-- Repeated prompts: the same prompt (prompt_hash) sent more than once in the last hour, per service and
-- user, most repeated first. prompt_simhash is the latest row's, to look for near-duplicates of it
-- (bit_count(prompt_simhash # x) <= k).
CREATE VIEW ai_repeated_prompts_1h AS
SELECT coalesce(service_name, '') AS service_name, coalesce(user_id, '') AS user_id, prompt_hash,
       count(*) AS requests, count(DISTINCT trace_id) AS traces, min(start_time) AS first_seen,
       max(start_time) AS last_seen, sum(total_cost_usd) AS total_cost,
       (array_agg(prompt_simhash ORDER BY start_time DESC) FILTER (WHERE prompt_simhash IS NOT NULL))[1]
         AS prompt_simhash
FROM ai_interaction_traces
WHERE start_time >= now() - interval '1 hour' AND prompt_hash IS NOT NULL
GROUP BY 1, 2, 3
HAVING count(*) > 1
ORDER BY requests DESC, last_seen DESC;
