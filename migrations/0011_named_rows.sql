-- 0011_named_rows: skip the agent fill for traces that name no agent or workflow (issue 15, item 2).
--
-- gw_fill_agents reads every row of a batch's traces, and walks each row's ancestors through rows and
-- span_links, after every batch: about 9 us of Postgres time a stored row, for nothing when no row of
-- those traces has an agent or workflow name (all the names it fills come from rows; links carry none).
-- The writer now asks gw_agents_named first, which answers from this partial index (a descent per trace,
-- usually empty), and runs the fill only when it says true. The index holds only named rows, which already
-- enter the agent and workflow indexes of 0006; building it reads the table once.

CREATE INDEX ai_interaction_traces_named_idx ON ai_interaction_traces (trace_id, start_time)
  WHERE agent_name IS NOT NULL OR workflow_name IS NOT NULL;

-- Whether any row of these traces within [from_ts, to_ts) has an agent or workflow name: when not,
-- gw_fill_agents(tids, from_ts, to_ts) has nothing to fill and returns 0. PL/pgSQL, as the fill: its plan
-- is kept for the connection (a SQL function is planned on every call, ~10 times the check itself here).
CREATE FUNCTION gw_agents_named(tids text[], from_ts timestamptz, to_ts timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM unnest(tids) AS k(t)
    WHERE EXISTS (
      SELECT 1 FROM ai_interaction_traces a
      WHERE a.trace_id = k.t AND a.start_time >= from_ts AND a.start_time < to_ts
        AND (a.agent_name IS NOT NULL OR a.workflow_name IS NOT NULL)));
END
$$;
