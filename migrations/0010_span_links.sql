-- 0010_span_links: agent and workflow attribution through spans that are not stored (issue 16, item 1).
--
-- Only GenAI spans are rows. A call whose parent is an HTTP or framework span under an agent was named
-- by the gateway when that span and the agent came in the call's request, and by gw_fill_agents when the
-- agent row was the call's parent; but a call and its non-GenAI parent exported before the agent, or a
-- call exported before its parent and the agent, stayed unnamed: nothing stored linked the call to the
-- agent. Now every request's non-GenAI spans that have a parent travel as links on the first row of their
-- trace in that request:
--   span_links text[]  "<span id>:<parent span id>" of each such span (lowercase hex), NULL when none;
--                      at most 512 per trace and request.
-- and gw_fill_agents walks them as it walks rows, so the call is named once the agent's row and every link
-- between them are stored, whichever requests brought them and in whichever order. A link is kept only
-- when its request also brought a GenAI span of the same trace (README "Agents, workflows and prompts"
-- says what that leaves out). Links are deleted with their row (retention), and a row re-sent keeps the
-- links it was first stored with.

ALTER TABLE ai_interaction_traces ADD COLUMN span_links text[];

-- As 0006's, plus the links: a walk from a row climbs through rows and links alike.
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
