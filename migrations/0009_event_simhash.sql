-- prompt_simhash of a row whose prompt came only as GenAI events (log records), as 0005 fills prompt_hash.
-- The gateway takes the SimHash (migrations/0006_agents.sql) before redaction, so it cannot be rebuilt
-- from the stored, redacted text_content: like prompt_hash, the request's first input event of a span
-- carries it, over the text of that request's input messages of the span joined as a row's is (the same
-- value the span would have had), and the merge fills the row with it under prompt_hash's rule: one
-- hash-bearing event gives both, messages split over requests give neither (NULL: unknown).

ALTER TABLE ai_interaction_events ADD COLUMN prompt_simhash bit(64);

CREATE OR REPLACE FUNCTION gw_merge_event_content(tids text[], sids text[], from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  WITH k AS (
    SELECT DISTINCT t, s FROM unnest(tids, sids) AS u(t, s)
  ), ev AS (
    SELECT e.trace_id, e.span_id, e.time, e.seq, e.role, e.direction, e.content, e.text_content, e.prompt_hash,
           e.prompt_simhash, e.redacted_kinds, e.event_name
    FROM ai_interaction_events e JOIN k ON e.trace_id = k.t AND e.span_id = k.s
    WHERE e.time >= from_ts AND e.time < to_ts AND e.direction IS NOT NULL AND e.content IS NOT NULL
  ), agg AS (
    SELECT trace_id, span_id,
           '[' || string_agg(content, ',' ORDER BY time, seq, event_name) FILTER (WHERE direction = 'input') || ']' AS prompt,
           '[' || string_agg(content, ',' ORDER BY time, seq, event_name) FILTER (WHERE direction = 'output') || ']' AS response,
           string_agg(text_content, E'\n' ORDER BY time, seq, event_name)
             FILTER (WHERE direction = 'input' AND role = 'system' AND text_content IS NOT NULL) AS sys,
           -- one hash-bearing row: one request carried every input message of the span, and its hash is
           -- the prompt's; several: the messages came split over requests, each hashed over its part
           -- only, and no hash of the whole (taken before redaction) can be rebuilt from stored rows.
           CASE WHEN count(prompt_hash) = 1
                THEN (array_agg(prompt_hash) FILTER (WHERE prompt_hash IS NOT NULL))[1] END AS phash,
           -- the SimHash likewise: it sits on the row with the hash, and is the prompt's only when that
           -- row is the span's one hash-bearing row
           CASE WHEN count(prompt_hash) = 1
                THEN (array_agg(prompt_simhash) FILTER (WHERE prompt_hash IS NOT NULL))[1] END AS psim
    FROM ev GROUP BY trace_id, span_id
  ), kinds AS (
    SELECT trace_id, span_id, array_agg(DISTINCT x ORDER BY x) AS kinds
    FROM ev, unnest(redacted_kinds) AS x GROUP BY trace_id, span_id
  ), cur AS (
    SELECT t.trace_id, t.span_id, t.start_time, t.prompt_content, t.response_content, t.system_prompt,
           t.prompt_hash, t.prompt_simhash, t.enrichment_flags, t.redacted_kinds,
           a.prompt, a.response, a.sys, a.phash, a.psim, kd.kinds,
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
           CASE WHEN fill_p THEN psim ELSE prompt_simhash END AS n_psim,
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
  SET prompt_content = nv.n_prompt, prompt_hash = nv.n_phash, prompt_simhash = nv.n_psim,
      response_content = nv.n_response,
      system_prompt = nv.n_sys, enrichment_flags = nv.n_flags, redacted_kinds = nv.n_kinds
  FROM nv
  WHERE t.trace_id = nv.trace_id AND t.span_id = nv.span_id AND t.start_time = nv.start_time
    AND (t.prompt_content IS DISTINCT FROM nv.n_prompt OR t.prompt_hash IS DISTINCT FROM nv.n_phash
         OR t.prompt_simhash IS DISTINCT FROM nv.n_psim
         OR t.response_content IS DISTINCT FROM nv.n_response OR t.system_prompt IS DISTINCT FROM nv.n_sys
         OR t.enrichment_flags IS DISTINCT FROM nv.n_flags OR t.redacted_kinds IS DISTINCT FROM nv.n_kinds);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
