-- 0012_trace_ids: session and user ids carried only by spans that are no GenAI span (DESIGN §3: "when any
-- span of a trace carries them ..., the writer fills them into every row of that trace that lacks them,
-- whichever span arrives first").
--
-- An HTTP server span with enduser.id, a framework span with session.id or
-- traceloop.association.properties.session_id: such spans give no row, so until now their ids were lost to
-- the trace's rows. The gateway now sends them to the writer per trace (record.h, struct gw_trace_fact),
-- which keeps them here:
--   - gw_trace_ids_apply (after a batch's rows) records a batch's ids and fills the trace's stored rows that
--     lack them, then recomputes those traces' summaries (0007);
--   - the writer's fill for new rows (store_pg.c, fill_trace_ids) reads them for rows stored later.
-- A trace's id is the greatest of those its rows and these spans carry (as the rows' fill and the summaries
-- always took max()), so the result does not depend on the order things arrive in. Kept as long as the
-- rows (gw_maintain deletes them once their start_time is past retention_days: migration 0013).

CREATE TABLE ai_trace_ids (
  trace_id text PRIMARY KEY,
  session_id text,
  user_id text,
  start_time timestamptz NOT NULL, -- the earliest start of the spans that carried them
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_trace_ids_start_idx ON ai_trace_ids (start_time);

-- The ids of a batch's spans (tids[i] with sessions[i], users[i], starts[i]; NULL where a span had none),
-- kept, then filled into the rows of those traces within [from_ts, to_ts) that lack them. Returns the
-- rows filled. Idempotent: a replayed batch changes nothing more.
CREATE FUNCTION gw_trace_ids_apply(tids text[], sessions text[], users text[], starts timestamptz[],
                                   from_ts timestamptz, to_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  filled text[];
BEGIN
  INSERT INTO ai_trace_ids AS t (trace_id, session_id, user_id, start_time)
  SELECT k.tid, max(k.s), max(k.u), min(k.st)
  FROM unnest(tids, sessions, users, starts) AS k(tid, s, u, st)
  WHERE k.s IS NOT NULL OR k.u IS NOT NULL
  GROUP BY k.tid
  ORDER BY k.tid
  ON CONFLICT (trace_id) DO UPDATE SET
    session_id = greatest(t.session_id, EXCLUDED.session_id),
    user_id = greatest(t.user_id, EXCLUDED.user_id),
    start_time = least(t.start_time, EXCLUDED.start_time),
    updated_at = now()
  WHERE t.session_id IS DISTINCT FROM greatest(t.session_id, EXCLUDED.session_id)
     OR t.user_id IS DISTINCT FROM greatest(t.user_id, EXCLUDED.user_id)
     OR t.start_time > EXCLUDED.start_time;
  -- Each trace's rows read through the (trace_id, span_id, start_time) key, one trace at a time, as the
  -- writer's fill does (the OFFSET 0 keeps the lookup per trace).
  -- (and the kept ids one key lookup per trace, never joined to the rows as a whole)
  WITH r AS (
    SELECT x.*, f.fs, f.fu FROM (SELECT DISTINCT y FROM unnest(tids) AS y) k(tid) CROSS JOIN LATERAL (
      SELECT a.trace_id, a.span_id, a.start_time, a.session_id, a.user_id FROM ai_interaction_traces a
      WHERE a.trace_id = k.tid AND a.start_time >= from_ts AND a.start_time < to_ts OFFSET 0) x
    CROSS JOIN LATERAL (
      SELECT t.session_id AS fs, t.user_id AS fu FROM ai_trace_ids t WHERE t.trace_id = k.tid OFFSET 0) f),
  todo AS (
    SELECT trace_id, span_id, start_time, coalesce(session_id, t_session) AS session_id,
           coalesce(user_id, t_user) AS user_id
    FROM (SELECT r.*, greatest(max(r.session_id) OVER w, r.fs) AS t_session,
                 greatest(max(r.user_id) OVER w, r.fu) AS t_user
          FROM r WINDOW w AS (PARTITION BY r.trace_id)) z
    WHERE (session_id IS NULL AND t_session IS NOT NULL) OR (user_id IS NULL AND t_user IS NOT NULL)),
  upd AS (
    UPDATE ai_interaction_traces a SET session_id = todo.session_id, user_id = todo.user_id FROM todo
    WHERE a.trace_id = todo.trace_id AND a.span_id = todo.span_id AND a.start_time = todo.start_time
      AND a.start_time >= from_ts AND a.start_time < to_ts
    RETURNING a.trace_id)
  SELECT count(*), array_agg(DISTINCT upd.trace_id) INTO n, filled FROM upd;
  IF n > 0 THEN
    PERFORM gw_summarize_traces(filled, from_ts, to_ts);
  END IF;
  RETURN n;
END
$$;
