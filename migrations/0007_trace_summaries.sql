-- 0007_trace_summaries: one row per trace, kept up to date as its spans arrive (issue 16, item 2): what an
-- agent run cost, how long it took, how many LLM and tool calls and errors it had.
--
-- ai_trace_summaries is recomputed from a trace's rows of ai_interaction_traces by gw_summarize_traces,
-- which the writer runs for the traces of every batch after its commit (after gw_fill_agents, so the
-- agent and workflow are the inherited ones). Recomputing, never adding, makes it idempotent: a re-sent
-- span, a replayed batch or a second run give the same row. Runs for one trace are serialized by a
-- transaction-level advisory lock taken before the rows are read, so the run that writes last read last:
-- two gateways storing spans of one trace at once cannot leave a summary that misses either's spans.
-- Like the fill, it looks at the rows within a day of the batch's spans (from_ts, to_ts).
--
-- Columns (NULL when unknown):
--   root_span_id, root_span_name  the trace's root span (no parent), once stored; a root that is no GenAI
--                                 span is never stored, and these stay NULL
--   service_name                  the root's, else the earliest row's
--   agent_name, workflow_name     the root's, else the earliest row's that has one
--   session_id, user_id           the trace's (the writer fills them into every row of the trace)
--   start_time, end_time, duration_ms   the first start and the last end of the trace's rows
--   spans, llm_calls (chat, text_completion, generate_content, embeddings), tool_calls (execute_tool),
--   agent_calls (invoke_agent), errors (status error)
--   input_tokens ... total_tokens  sums of the rows' counts (0 when none reported)
--   total_cost_usd                sum of the rows' costs; NULL when no row has one
--   models                        the distinct model_id of the rows, sorted

CREATE TABLE ai_trace_summaries (
  trace_id text PRIMARY KEY,
  root_span_id text,
  root_span_name text,
  service_name text,
  agent_name text,
  workflow_name text,
  session_id text,
  user_id text,
  start_time timestamptz NOT NULL,
  end_time timestamptz,
  duration_ms double precision,
  spans int NOT NULL,
  llm_calls int NOT NULL,
  tool_calls int NOT NULL,
  agent_calls int NOT NULL,
  errors int NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  cache_read_tokens bigint NOT NULL,
  cache_write_tokens bigint NOT NULL,
  reasoning_tokens bigint NOT NULL,
  total_tokens bigint NOT NULL,
  total_cost_usd numeric,
  models text[],
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_trace_summaries_start_idx ON ai_trace_summaries (start_time);
CREATE INDEX ai_trace_summaries_agent_idx ON ai_trace_summaries (agent_name, start_time) WHERE agent_name IS NOT NULL;

CREATE FUNCTION gw_summarize_traces(tids text[], from_ts timestamptz, to_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  t text;
BEGIN
  -- 0x67777473, "gwts"; in trace order, so two runs over overlapping traces never deadlock
  FOR t IN SELECT DISTINCT x FROM unnest(tids) AS x ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(1735881843, hashtext(t));
  END LOOP;
  -- a new statement: its snapshot is taken after the locks, so it sees what the run before it saw
  INSERT INTO ai_trace_summaries AS s (trace_id, root_span_id, root_span_name, service_name, agent_name,
    workflow_name, session_id, user_id, start_time, end_time, duration_ms, spans, llm_calls, tool_calls,
    agent_calls, errors, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    total_tokens, total_cost_usd, models, updated_at)
  SELECT r.trace_id,
         (array_agg(r.span_id ORDER BY r.start_time, r.span_id) FILTER (WHERE r.parent_span_id IS NULL))[1],
         (array_agg(r.span_name ORDER BY r.start_time, r.span_id) FILTER (WHERE r.parent_span_id IS NULL))[1],
         coalesce((array_agg(r.service_name ORDER BY r.start_time, r.span_id) FILTER (WHERE r.parent_span_id IS NULL))[1],
                  (array_agg(r.service_name ORDER BY r.start_time, r.span_id) FILTER (WHERE r.service_name IS NOT NULL))[1]),
         coalesce((array_agg(r.agent_name ORDER BY r.start_time, r.span_id) FILTER (WHERE r.parent_span_id IS NULL))[1],
                  (array_agg(r.agent_name ORDER BY r.start_time, r.span_id) FILTER (WHERE r.agent_name IS NOT NULL))[1]),
         coalesce((array_agg(r.workflow_name ORDER BY r.start_time, r.span_id) FILTER (WHERE r.parent_span_id IS NULL))[1],
                  (array_agg(r.workflow_name ORDER BY r.start_time, r.span_id) FILTER (WHERE r.workflow_name IS NOT NULL))[1]),
         max(r.session_id), max(r.user_id),
         min(r.start_time), max(r.end_time),
         extract(epoch FROM (max(r.end_time) - min(r.start_time))) * 1000,
         count(*),
         count(*) FILTER (WHERE r.operation IN ('chat', 'text_completion', 'generate_content', 'embeddings')),
         count(*) FILTER (WHERE r.operation = 'execute_tool'),
         count(*) FILTER (WHERE r.operation = 'invoke_agent'),
         count(*) FILTER (WHERE r.status = 'error'),
         coalesce(sum(r.input_tokens), 0), coalesce(sum(r.output_tokens), 0), coalesce(sum(r.cache_read_tokens), 0),
         coalesce(sum(r.cache_write_tokens), 0), coalesce(sum(r.reasoning_tokens), 0), coalesce(sum(r.total_tokens), 0),
         sum(r.total_cost_usd),
         array_agg(DISTINCT r.model_id ORDER BY r.model_id) FILTER (WHERE r.model_id IS NOT NULL),
         now()
  FROM (SELECT DISTINCT x FROM unnest(tids) AS x) k CROSS JOIN LATERAL (
    SELECT a.trace_id, a.span_id, a.parent_span_id, a.span_name, a.service_name, a.agent_name, a.workflow_name,
           a.session_id, a.user_id, a.start_time, a.end_time, a.operation, a.status, a.input_tokens, a.output_tokens,
           a.cache_read_tokens, a.cache_write_tokens, a.reasoning_tokens, a.total_tokens, a.total_cost_usd, a.model_id
    FROM ai_interaction_traces a
    WHERE a.trace_id = k.x AND a.start_time >= from_ts AND a.start_time < to_ts OFFSET 0) r
  GROUP BY r.trace_id
  ORDER BY r.trace_id
  ON CONFLICT (trace_id) DO UPDATE SET
    root_span_id = EXCLUDED.root_span_id, root_span_name = EXCLUDED.root_span_name,
    service_name = EXCLUDED.service_name, agent_name = EXCLUDED.agent_name, workflow_name = EXCLUDED.workflow_name,
    session_id = EXCLUDED.session_id, user_id = EXCLUDED.user_id, start_time = EXCLUDED.start_time,
    end_time = EXCLUDED.end_time, duration_ms = EXCLUDED.duration_ms, spans = EXCLUDED.spans,
    llm_calls = EXCLUDED.llm_calls, tool_calls = EXCLUDED.tool_calls, agent_calls = EXCLUDED.agent_calls,
    errors = EXCLUDED.errors, input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
    cache_read_tokens = EXCLUDED.cache_read_tokens, cache_write_tokens = EXCLUDED.cache_write_tokens,
    reasoning_tokens = EXCLUDED.reasoning_tokens, total_tokens = EXCLUDED.total_tokens,
    total_cost_usd = EXCLUDED.total_cost_usd, models = EXCLUDED.models, updated_at = now()
  -- an unchanged trace keeps its row untouched (a replay writes nothing)
  WHERE (s.root_span_id, s.root_span_name, s.service_name, s.agent_name, s.workflow_name, s.session_id, s.user_id,
         s.start_time, s.end_time, s.spans, s.llm_calls, s.tool_calls, s.agent_calls, s.errors, s.input_tokens,
         s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens, s.total_tokens,
         s.total_cost_usd, s.models)
        IS DISTINCT FROM
        (EXCLUDED.root_span_id, EXCLUDED.root_span_name, EXCLUDED.service_name, EXCLUDED.agent_name,
         EXCLUDED.workflow_name, EXCLUDED.session_id, EXCLUDED.user_id, EXCLUDED.start_time, EXCLUDED.end_time,
         EXCLUDED.spans, EXCLUDED.llm_calls, EXCLUDED.tool_calls, EXCLUDED.agent_calls, EXCLUDED.errors,
         EXCLUDED.input_tokens, EXCLUDED.output_tokens, EXCLUDED.cache_read_tokens, EXCLUDED.cache_write_tokens,
         EXCLUDED.reasoning_tokens, EXCLUDED.total_tokens, EXCLUDED.total_cost_usd, EXCLUDED.models);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Retention: a summary goes with its trace's rows (retention_days after its end). As 0003, plus that.
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
  DELETE FROM trace_metrics_hourly WHERE hour_bucket < rollup_cutoff;
  GET DIAGNOSTICS rollup_rows_deleted = ROW_COUNT;
  DELETE FROM ai_interaction_rejects WHERE created_at < cutoff;
  GET DIAGNOSTICS rejects_deleted = ROW_COUNT;
  DELETE FROM ai_trace_summaries WHERE coalesce(end_time, start_time) < cutoff;
END
$$;
