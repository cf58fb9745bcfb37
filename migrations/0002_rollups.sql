-- 0002_rollups: hourly rollups of the interaction rows (DESIGN §6), their duration histogram helpers,
-- the dashboard view and a rebuild function.
--
-- The writer (gateway/store/store_pg.c) upserts trace_metrics_hourly in the same transaction as the
-- rows it counts, from the rows its INSERT ... ON CONFLICT DO NOTHING actually inserted, so a re-sent
-- span changes nothing. Its aggregate expressions are the same as gw_rollup_rebuild's below: keep them
-- in step. Hours are UTC: hour_bucket = date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'.
--
-- Duration histogram: bigint[15], fixed boundaries in ms (the OTel GenAI client operation duration
-- buckets): 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920, +Inf.
-- Element i (1-based) counts durations in (bound[i-1], bound[i]], OTel's explicit-bucket convention:
--   [1] <= 10 (negative durations too), [2] (10, 20], ..., [14] (40960, 81920], [15] > 81920.
-- Rows without a duration are counted in no bucket, so sum(histogram) = rows with a duration.

CREATE TABLE trace_metrics_hourly (
  hour_bucket timestamptz NOT NULL,
  service_name text NOT NULL DEFAULT '',
  provider text NOT NULL DEFAULT '',
  model_id text NOT NULL DEFAULT '',
  operation text NOT NULL DEFAULT '',
  total_requests bigint NOT NULL DEFAULT 0,
  successful_requests bigint NOT NULL DEFAULT 0,
  error_requests bigint NOT NULL DEFAULT 0,
  total_input_tokens bigint NOT NULL DEFAULT 0,
  total_output_tokens bigint NOT NULL DEFAULT 0,
  total_cache_read_tokens bigint NOT NULL DEFAULT 0,
  total_cache_write_tokens bigint NOT NULL DEFAULT 0,
  total_reasoning_tokens bigint NOT NULL DEFAULT 0,
  total_cost numeric NOT NULL DEFAULT 0,
  sum_duration_ms double precision NOT NULL DEFAULT 0,
  sum_first_token_latency_ms double precision NOT NULL DEFAULT 0,
  first_token_count bigint NOT NULL DEFAULT 0,
  duration_histogram bigint[] NOT NULL DEFAULT '{0,0,0,0,0,0,0,0,0,0,0,0,0,0,0}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (hour_bucket, service_name, provider, model_id, operation)
);
CREATE INDEX trace_metrics_hourly_model_idx ON trace_metrics_hourly (model_id, hour_bucket);
CREATE INDEX trace_metrics_hourly_service_idx ON trace_metrics_hourly (service_name, hour_bucket);

-- The 14 finite upper bounds of the histogram, in ms; the 15th bucket is +Inf.
CREATE FUNCTION gw_duration_bounds() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT '{10,20,40,80,160,320,640,1280,2560,5120,10240,20480,40960,81920}'::double precision[]
$$;

-- The 1-based histogram index of a duration in ms (1..15), NULL for NULL: 1 + the number of bounds
-- strictly below ms, counted by width_bucket over the negated bounds (it counts bounds <= its operand)
-- so that the upper bound is inclusive. A plain expression, so the planner inlines it: the writer
-- evaluates it for every row. The literal must stay the negation of gw_duration_bounds().
CREATE FUNCTION gw_duration_bucket(ms double precision) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 15 - width_bucket(-ms,
    '{-81920,-40960,-20480,-10240,-5120,-2560,-1280,-640,-320,-160,-80,-40,-20,-10}'::double precision[])
$$;

-- Element-wise sum; a missing element or a NULL array counts as zeros.
CREATE FUNCTION gw_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
    coalesce((SELECT array_agg(coalesce(a[i], 0) + coalesce(b[i], 0) ORDER BY i)
              FROM generate_series(1, greatest(cardinality(a), cardinality(b))) AS i), a) END
$$;

CREATE AGGREGATE gw_hist_sum(bigint[]) (
  SFUNC = gw_hist_add,
  STYPE = bigint[],
  COMBINEFUNC = gw_hist_add,
  PARALLEL = SAFE
);

-- The q-quantile (0..1) of a histogram in ms: linear interpolation inside the bucket holding the rank
-- q * count; bucket 1 spans [0, 10], the +Inf bucket's upper bound is its lower bound (81920).
-- NULL for an empty histogram or q outside [0, 1].
CREATE FUNCTION gw_hist_quantile(hist bigint[], q double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  bounds double precision[] := gw_duration_bounds();
  total bigint;
  rank double precision;
  cum bigint := 0;
  c bigint;
  lo double precision;
  hi double precision;
BEGIN
  IF hist IS NULL OR q IS NULL OR q < 0 OR q > 1 THEN
    RETURN NULL;
  END IF;
  SELECT sum(coalesce(x, 0)) INTO total FROM unnest(hist) AS x;
  IF total IS NULL OR total <= 0 THEN
    RETURN NULL;
  END IF;
  rank := q * total;
  FOR i IN 1 .. cardinality(hist) LOOP
    c := coalesce(hist[i], 0);
    IF c > 0 AND cum + c >= rank THEN
      lo := CASE WHEN i = 1 THEN 0 ELSE bounds[least(i - 1, cardinality(bounds))] END;
      hi := CASE WHEN i <= cardinality(bounds) THEN bounds[i] ELSE lo END;
      RETURN lo + (hi - lo) * greatest(rank - cum, 0) / c;
    END IF;
    cum := cum + c;
  END LOOP;
  RETURN NULL;
END
$$;

-- The rollup with its derived values. avg_duration_ms divides by the rows that had a duration (the
-- histogram's count); avg_tokens_per_request is (input + output tokens) / requests.
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

-- Recompute the rollups of every whole UTC hour overlapping [from_ts, to_ts) from the interaction rows:
-- delete those hours' rollup rows, then GROUP BY. Returns the number of rollup rows written.
-- Takes the same row locks as the writer's upsert; run it when the range is not being written, or accept
-- that spans committed meanwhile into those hours are counted by whichever runs last.
CREATE FUNCTION gw_rollup_rebuild(from_ts timestamptz, to_ts timestamptz) RETURNS bigint
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
    total_requests, successful_requests, error_requests, total_input_tokens, total_output_tokens,
    total_cache_read_tokens, total_cache_write_tokens, total_reasoning_tokens, total_cost,
    sum_duration_ms, sum_first_token_latency_ms, first_token_count, duration_histogram, updated_at)
  SELECT date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
         coalesce(service_name, ''), coalesce(provider, ''), coalesce(model_id, ''), coalesce(operation, ''),
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
  GROUP BY 1, 2, 3, 4, 5;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
