-- 0004_events: GenAI events from OTLP log records, and their merge into the interaction rows (DESIGN §3).
--
-- The official OpenTelemetry instrumentations put prompts and completions in log records (gen_ai.user.message,
-- gen_ai.choice, ...) carrying the LLM span's ids, not in the span. The writer stores one row per message
-- in ai_interaction_events (created in 0001) and fills the span's prompt_content, response_content,
-- system_prompt and prompt_hash from them, whichever arrives first:
--   - the span first: the events' insert merges them into the existing row;
--   - the events first: the span's insert merges the stored events into the new row;
--   - both in one batch, events re-sent, events split over several requests: every merge recomputes the
--     fields from all stored events of the span, so the final row is the same in every order.
-- Span attributes win: a field the span itself carried is never replaced. A field filled from events is
-- marked in enrichment_flags (prompt_from_logs, response_from_logs, system_from_logs), which is how a later
-- merge knows it may recompute it. Each row's content is one message rendered exactly as one element of
-- the span path's JSON array, so '[' || elements joined by ',' || ']' is the same array the span path
-- would have stored. Events are ordered by (time, seq, event_name).

ALTER TABLE ai_interaction_events
  ADD COLUMN direction text CHECK (direction IN ('input', 'output')),
  ADD COLUMN text_content text,
  ADD COLUMN prompt_hash text,
  ADD COLUMN redacted_kinds text[],
  ADD COLUMN service_name text;

CREATE INDEX ai_interaction_events_span_idx ON ai_interaction_events (trace_id, span_id, time);

-- Merge the events of the given spans into their interaction rows. Events and rows are looked up in
-- [from_ts, to_ts) (event time, row start_time): callers pass their batch's time range widened by a day,
-- which keeps the lookups inside a few daily partitions. Returns the number of rows changed.
CREATE FUNCTION gw_merge_event_content(tids text[], sids text[], from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  WITH k AS (
    SELECT DISTINCT t, s FROM unnest(tids, sids) AS u(t, s)
  ), ev AS (
    SELECT e.trace_id, e.span_id, e.time, e.seq, e.role, e.direction, e.content, e.text_content, e.prompt_hash,
           e.redacted_kinds, e.event_name
    FROM ai_interaction_events e JOIN k ON e.trace_id = k.t AND e.span_id = k.s
    WHERE e.time >= from_ts AND e.time < to_ts AND e.direction IS NOT NULL AND e.content IS NOT NULL
  ), agg AS (
    SELECT trace_id, span_id,
           '[' || string_agg(content, ',' ORDER BY time, seq, event_name) FILTER (WHERE direction = 'input') || ']' AS prompt,
           '[' || string_agg(content, ',' ORDER BY time, seq, event_name) FILTER (WHERE direction = 'output') || ']' AS response,
           string_agg(text_content, E'\n' ORDER BY time, seq, event_name)
             FILTER (WHERE direction = 'input' AND role = 'system' AND text_content IS NOT NULL) AS sys,
           (array_agg(prompt_hash ORDER BY time, seq, event_name) FILTER (WHERE prompt_hash IS NOT NULL))[1] AS phash
    FROM ev GROUP BY trace_id, span_id
  ), kinds AS (
    SELECT trace_id, span_id, array_agg(DISTINCT x ORDER BY x) AS kinds
    FROM ev, unnest(redacted_kinds) AS x GROUP BY trace_id, span_id
  ), cur AS (
    SELECT t.trace_id, t.span_id, t.start_time, t.prompt_content, t.response_content, t.system_prompt,
           t.prompt_hash, t.enrichment_flags, t.redacted_kinds,
           a.prompt, a.response, a.sys, a.phash, kd.kinds,
           a.prompt IS NOT NULL AND (t.prompt_content IS NULL OR 'prompt_from_logs' = ANY (t.enrichment_flags)) AS fill_p,
           a.response IS NOT NULL AND (t.response_content IS NULL OR 'response_from_logs' = ANY (t.enrichment_flags)) AS fill_r,
           a.sys IS NOT NULL AND (t.system_prompt IS NULL OR 'system_from_logs' = ANY (t.enrichment_flags)) AS fill_s
    FROM ai_interaction_traces t
    JOIN agg a ON a.trace_id = t.trace_id AND a.span_id = t.span_id
    LEFT JOIN kinds kd ON kd.trace_id = t.trace_id AND kd.span_id = t.span_id
    WHERE t.start_time >= from_ts AND t.start_time < to_ts
  ), nv AS (
    SELECT c.*,
           CASE WHEN fill_p THEN prompt ELSE prompt_content END AS n_prompt,
           CASE WHEN fill_p THEN phash ELSE prompt_hash END AS n_phash,
           CASE WHEN fill_r THEN response ELSE response_content END AS n_response,
           CASE WHEN fill_s THEN sys ELSE system_prompt END AS n_sys,
           ARRAY(SELECT f FROM unnest(coalesce(enrichment_flags, '{}')) AS f WHERE f NOT LIKE '%\_from\_logs')
             || ARRAY(SELECT f FROM unnest(ARRAY['prompt_from_logs', 'response_from_logs', 'system_from_logs'],
                                           ARRAY[fill_p OR 'prompt_from_logs' = ANY (enrichment_flags),
                                                 fill_r OR 'response_from_logs' = ANY (enrichment_flags),
                                                 fill_s OR 'system_from_logs' = ANY (enrichment_flags)]) AS u(f, on_)
                      WHERE on_) AS n_flags,
           CASE WHEN kinds IS NULL THEN redacted_kinds
                ELSE ARRAY(SELECT DISTINCT x FROM unnest(coalesce(redacted_kinds, '{}') || kinds) AS x ORDER BY x)
           END AS n_kinds
    FROM cur c
  )
  UPDATE ai_interaction_traces t
  SET prompt_content = nv.n_prompt, prompt_hash = nv.n_phash, response_content = nv.n_response,
      system_prompt = nv.n_sys, enrichment_flags = nv.n_flags, redacted_kinds = nv.n_kinds
  FROM nv
  WHERE t.trace_id = nv.trace_id AND t.span_id = nv.span_id AND t.start_time = nv.start_time
    AND (t.prompt_content IS DISTINCT FROM nv.n_prompt OR t.prompt_hash IS DISTINCT FROM nv.n_phash
         OR t.response_content IS DISTINCT FROM nv.n_response OR t.system_prompt IS DISTINCT FROM nv.n_sys
         OR t.enrichment_flags IS DISTINCT FROM nv.n_flags OR t.redacted_kinds IS DISTINCT FROM nv.n_kinds);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Content events (direction set) stored more than an hour before now_ts whose span has no interaction
-- row: their LLM span never reached this gateway (a sampler dropped it, or the app exports logs only).
-- The maintenance loop publishes the count as a gauge; it looks back over the raw retention window.
CREATE FUNCTION gw_orphan_event_count(now_ts timestamptz, retention_days int) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT count(*) FROM ai_interaction_events e
  WHERE e.direction IS NOT NULL
    AND e.time < now_ts - interval '1 hour' AND e.time >= now_ts - make_interval(days => retention_days)
    AND NOT EXISTS (SELECT 1 FROM ai_interaction_traces t
                    WHERE t.trace_id = e.trace_id AND t.span_id = e.span_id
                      AND t.start_time >= e.time - interval '1 day' AND t.start_time < e.time + interval '1 day')
$$;
