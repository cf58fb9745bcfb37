-- otlp_http.lua: wrk script POSTing OTLP/protobuf trace requests to /v1/traces with fresh ids.
--
--   wrk -s bench/otlp_http.lua URL -- BODYDIR NBODIES [RUN]
--
-- Reads BODYDIR/body-NNN.pb and body-NNN.idx (written by gen_payload) at init and rotates through the
-- bodies. Before each request it overwrites the last four bytes of every trace_id (offsets from .idx)
-- with a per-request counter whose top byte is the wrk thread, so every request carries new
-- (trace_id, span_id) keys: nothing dedups in Postgres and "landed" counts real inserts. RUN (0..15,
-- default 0) goes into the top byte too, so runs against one database never repeat each other's keys.
-- ENC "json" (after RUN) posts BODYDIR/body-NNN.json as OTLP/JSON instead, unchanged: its ids are not
-- refreshed, so it suits only runs where nothing dedups (bench/http_recv.sh has no consumer). ENC "gzip"
-- posts BODYDIR/body-NNN.pb.gz with Content-Encoding: gzip, unchanged likewise.

local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local bodies = {}
local seq = 0
local run = 0
local json = false
local gzip = false

local function read_all(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. path)
  local s = f:read("*a")
  f:close()
  return s
end

-- A protobuf body cut around each patch point (offsets from the .idx file): pieces[1], id, pieces[2], id, ...
local function cut(pb, idx)
  local pieces, prev = {}, 1
  for line in io.lines(idx) do
    local off = tonumber(line)
    pieces[#pieces + 1] = pb:sub(prev, off) -- bytes up to the 4 patched ones (0-based off)
    pieces[#pieces + 1] = false              -- placeholder for the counter
    prev = off + 5
  end
  pieces[#pieces + 1] = pb:sub(prev)
  return { pieces = pieces, len = #pb }
end

function init(args)
  local dir, n = args[1], tonumber(args[2] or "1")
  run = tonumber(args[3] or "0") % 16
  json = args[4] == "json"
  gzip = args[4] == "gzip"
  assert(dir, "usage: wrk -s otlp_http.lua URL -- BODYDIR NBODIES [RUN [json|gzip]]")
  for i = 0, n - 1 do
    local name = string.format("%s/body-%03d", dir, i)
    if json then
      bodies[#bodies + 1] = { json = read_all(name .. ".json") }
    elseif gzip then
      bodies[#bodies + 1] = { gz = read_all(name .. ".pb.gz") }
    else
      bodies[#bodies + 1] = cut(read_all(name .. ".pb"), name .. ".idx")
    end
  end
  seq = 0
end

function request()
  seq = seq + 1
  local b = bodies[(seq % #bodies) + 1]
  if b.json then
    return wrk.format("POST", "/v1/traces", { ["Content-Type"] = "application/json" }, b.json)
  end
  if b.gz then
    return wrk.format("POST", "/v1/traces", { ["Content-Type"] = "application/x-protobuf", ["Content-Encoding"] = "gzip" }, b.gz)
  end
  local ctr = string.char((run * 16 + tid) % 256, math.floor(seq / 65536) % 256, math.floor(seq / 256) % 256, seq % 256)
  local parts = {}
  for i, p in ipairs(b.pieces) do
    parts[i] = p or ctr
  end
  return wrk.format("POST", "/v1/traces", { ["Content-Type"] = "application/x-protobuf" }, table.concat(parts))
end
