-- 0013_rollup_key: trace_metrics_hourly is again one row per (hour_bucket, service_name, provider, model_id,
-- operation), as the schema promises and as queries reading "the row" of a model and operation expect.
--
-- Since 0006 the rollups also had the agent, workflow and prompt template as dimensions, so one model's
-- calls of an hour could be split over several rows (calls under an agent and calls outside one). The
-- table with the nine dimensions is kept, under the name trace_metrics_hourly_agents (the writer, the
-- agent fill and the rebuild now write it, and the agents dashboard reads it), and trace_metrics_hourly
-- becomes a view over it summed by the five: always the same transaction's data as the rows it counts,
-- no second upsert per batch. trace_metrics_hourly_v (the derived values) is over the five as well;
-- trace_metrics_hourly_agents_v is the nine-dimension one it was. A role that could read the rollups
-- (deploy/grafana/grafana-reader.sql) can read the new views too.

ALTER TABLE trace_metrics_hourly RENAME TO trace_metrics_hourly_agents;
ALTER TABLE trace_metrics_hourly_agents RENAME CONSTRAINT trace_metrics_hourly_pkey TO trace_metrics_hourly_agents_pkey;
ALTER INDEX trace_metrics_hourly_agent_idx RENAME TO trace_metrics_hourly_agents_agent_idx;
ALTER VIEW trace_metrics_hourly_v RENAME TO trace_metrics_hourly_agents_v;

CREATE VIEW trace_metrics_hourly AS
SELECT hour_bucket, service_name, provider, model_id, operation,
       sum(total_requests)::bigint AS total_requests,
       sum(successful_requests)::bigint AS successful_requests,
       sum(error_requests)::bigint AS error_requests,
       sum(total_input_tokens)::bigint AS total_input_tokens,
       sum(total_output_tokens)::bigint AS total_output_tokens,
       sum(total_cache_read_tokens)::bigint AS total_cache_read_tokens,
       sum(total_cache_write_tokens)::bigint AS total_cache_write_tokens,
       sum(total_reasoning_tokens)::bigint AS total_reasoning_tokens,
       sum(total_cost) AS total_cost,
       sum(sum_duration_ms) AS sum_duration_ms,
       sum(sum_first_token_latency_ms) AS sum_first_token_latency_ms,
       sum(first_token_count)::bigint AS first_token_count,
       gw_hist_sum(duration_histogram) AS duration_histogram,
       max(updated_at) AS updated_at
FROM trace_metrics_hourly_agents
GROUP BY hour_bucket, service_name, provider, model_id, operation;

CREATE VIEW trace_metrics_hourly_v AS
SELECT m.*,
       m.sum_duration_ms / nullif((SELECT sum(x) FROM unnest(m.duration_histogram) AS x), 0)
         AS avg_duration_ms,
       m.sum_first_token_latency_ms / nullif(m.first_token_count, 0) AS avg_first_token_latency_ms,
       (m.total_input_tokens + m.total_output_tokens)::double precision / nullif(m.total_requests, 0)
         AS avg_tokens_per_request,
       gw_hist_quantile(m.duration_histogram, 0.50) AS p50_duration_ms,
       gw_hist_quantile(m.duration_histogram, 0.95) AS p95_duration_ms,
       gw_hist_quantile(m.duration_histogram, 0.99) AS p99_duration_ms
FROM trace_metrics_hourly m;

-- Whoever could read the rollups (the renamed table keeps its grants) reads the new views too.
DO $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT DISTINCT grantee FROM information_schema.role_table_grants
           WHERE table_name = 'trace_metrics_hourly_agents' AND privilege_type = 'SELECT'
             AND grantee NOT IN (current_user, 'PUBLIC') LOOP
    EXECUTE format('GRANT SELECT ON trace_metrics_hourly, trace_metrics_hourly_v TO %I', g.grantee);
  END LOOP;
END
$$;

-- The functions that write the rollups, as in 0006, 0010 and 0012, on the renamed table.

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
  DELETE FROM trace_metrics_hourly_agents WHERE hour_bucket >= h0 AND hour_bucket < h1;
  INSERT INTO trace_metrics_hourly_agents (hour_bucket, service_name, provider, model_id, operation,
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

CREATE OR REPLACE FUNCTION gw_fill_agents(tids text[], from_ts timestamptz, to_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  hours timestamptz[];
BEGIN
  WITH RECURSIVE r AS (
    -- one trace at a time through the (trace_id, span_id, start_time) key (as the writer's session fill)
    SELECT x.* FROM (SELECT DISTINCT t FROM unnest(tids) AS t) k CROSS JOIN LATERAL (
      SELECT a.trace_id, a.span_id, a.parent_span_id, a.start_time, a.agent_name, a.workflow_name, a.span_links
      FROM ai_interaction_traces a
      WHERE a.trace_id = k.t AND a.start_time >= from_ts AND a.start_time < to_ts OFFSET 0) x
  ), node AS (
    -- the rows, and the spans that are not rows as the rows' span_links know them (no names of their own)
    SELECT trace_id, span_id, parent_span_id, agent_name, workflow_name, 0 AS link, start_time FROM r
    UNION ALL
    SELECT r.trace_id, split_part(l, ':', 1), split_part(l, ':', 2), NULL, NULL, 1, r.start_time
    FROM r CROSS JOIN LATERAL unnest(r.span_links) AS l
    WHERE l ~ '^[0-9a-f]{16}:[0-9a-f]{16}$'
  ), par AS (
    -- one per span (a span re-sent with another start time is two rows; a row wins over a link): the
    -- parent to walk to
    SELECT DISTINCT ON (trace_id, span_id) trace_id, span_id, parent_span_id, agent_name, workflow_name
    FROM node ORDER BY trace_id, span_id, link, start_time
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
    INSERT INTO trace_metrics_hourly_agents AS t (hour_bucket, service_name, provider, model_id, operation,
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
    DELETE FROM trace_metrics_hourly_agents WHERE hour_bucket = ANY (hours) AND total_requests = 0;
  END IF;
  RETURN n;
END
$$;

-- Retention as 0007, on the renamed table, and the trace ids kept by 0012 deleted with their rows.
CREATE OR REPLACE FUNCTION gw_maintain(now_ts timestamptz, days_ahead int, retention_days int, rollup_retention_days int,
                            OUT ran boolean, OUT partitions_created int, OUT partitions_dropped int,
                            OUT rollup_rows_deleted bigint, OUT rejects_deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
  today date := (now_ts AT TIME ZONE 'UTC')::date;
  cutoff timestamptz := now_ts - make_interval(days => retention_days);
  rollup_cutoff timestamptz := now_ts - make_interval(days => rollup_retention_days);
  tbl text;
  p record;
  d int;
BEGIN
  ran := false;
  partitions_created := 0;
  partitions_dropped := 0;
  rollup_rows_deleted := 0;
  rejects_deleted := 0;
  IF now_ts IS NULL OR days_ahead IS NULL OR days_ahead < 0 OR retention_days IS NULL OR retention_days < 1
     OR rollup_retention_days IS NULL OR rollup_retention_days < retention_days THEN
    RAISE EXCEPTION 'gw_maintain: bad arguments (days_ahead >= 0, retention_days >= 1, rollup_retention_days >= retention_days)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- 0x67776d74, "gwmt": the maintenance lock key (migrations use their own).
  IF NOT pg_try_advisory_xact_lock(1735880052) THEN
    RETURN;
  END IF;
  ran := true;
  SET LOCAL lock_timeout = '5s';
  FOREACH tbl IN ARRAY ARRAY['ai_interaction_traces', 'ai_interaction_events'] LOOP
    FOR d IN 0 .. days_ahead LOOP
      IF gw_ensure_partition(tbl, today + d) THEN
        partitions_created := partitions_created + 1;
      END IF;
    END LOOP;
    FOR p IN
      SELECT c.relname AS name, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = tbl::regclass AND c.relname ~ ('^' || tbl || '_p[0-9]{8}$')
      ORDER BY 2
    LOOP
      IF ((p.day + 1)::timestamp AT TIME ZONE 'UTC') <= cutoff THEN
        EXECUTE format('DROP TABLE %I', p.name);
        partitions_dropped := partitions_dropped + 1;
      END IF;
    END LOOP;
  END LOOP;
  DELETE FROM trace_metrics_hourly_agents WHERE hour_bucket < rollup_cutoff;
  GET DIAGNOSTICS rollup_rows_deleted = ROW_COUNT;
  DELETE FROM ai_interaction_rejects WHERE created_at < cutoff;
  GET DIAGNOSTICS rejects_deleted = ROW_COUNT;
  DELETE FROM ai_trace_summaries WHERE coalesce(end_time, start_time) < cutoff;
  DELETE FROM ai_trace_ids WHERE start_time < cutoff;
END
$$;
