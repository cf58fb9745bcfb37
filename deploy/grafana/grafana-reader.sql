-- grafana-reader.sql: a login role that can read what the Grafana dashboards and alert rules query and
-- nothing else. Run it as the owner of the genai-gateway tables, in the gateway's database:
--
--   psql "$DATABASE_URL" -v reader=grafana_reader -v password='a long random secret' -f deploy/grafana/grafana-reader.sql
--
-- SELECT on the partitioned table is enough for every daily partition, present and future: PostgreSQL
-- checks privileges on the table a query names. The rollup view runs with its owner's rights, and the
-- histogram functions (gw_hist_sum, gw_hist_quantile) are executable by everyone, as functions are by
-- default. The role's sessions are read-only and time-limited whatever SQL a dashboard editor types.
CREATE ROLE :"reader" LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ai_interaction_traces, trace_metrics_hourly, trace_metrics_hourly_v, trace_metrics_hourly_agents,
  trace_metrics_hourly_agents_v, ai_trace_summaries,
  ai_repeated_prompts_1h TO :"reader";
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
