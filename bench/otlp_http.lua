-- otlp_http.lua: wrk script POSTing OTLP/protobuf trace requests to /v1/traces with fresh ids.
--
--   wrk -s bench/otlp_http.lua URL -- BODYDIR NBODIES [RUN]
--
-- Reads BODYDIR/body-NNN.pb and body-NNN.idx (written by gen_payload) at init and rotates through the
-- bodies. Before each request it overwrites the last four bytes of every trace_id (offsets from .idx)
-- with a per-request counter whose top byte is the wrk thread, so every request carries new
-- (trace_id, span_id) keys: nothing dedups in Postgres and "landed" counts real inserts. RUN (0..15,
-- default 0) goes into the top byte too, so runs against one database never repeat each other's keys.

local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local bodies = {}
local seq = 0
local run = 0

local function read_all(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. path)
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  local dir, n = args[1], tonumber(args[2] or "1")
  run = tonumber(args[3] or "0") % 16
  assert(dir, "usage: wrk -s otlp_http.lua URL -- BODYDIR NBODIES")
  for i = 0, n - 1 do
    local name = string.format("%s/body-%03d", dir, i)
    local pb = read_all(name .. ".pb")
    -- the body cut around each patch point: pieces[1], id, pieces[2], id, ...
    local pieces, prev = {}, 1
    for line in io.lines(name .. ".idx") do
      local off = tonumber(line)
      pieces[#pieces + 1] = pb:sub(prev, off) -- bytes up to the 4 patched ones (0-based off)
      pieces[#pieces + 1] = false              -- placeholder for the counter
      prev = off + 5
    end
    pieces[#pieces + 1] = pb:sub(prev)
    bodies[#bodies + 1] = { pieces = pieces, len = #pb }
  end
  seq = 0
end

function request()
  seq = seq + 1
  local b = bodies[(seq % #bodies) + 1]
  local ctr = string.char((run * 16 + tid) % 256, math.floor(seq / 65536) % 256, math.floor(seq / 256) % 256, seq % 256)
  local parts = {}
  for i, p in ipairs(b.pieces) do
    parts[i] = p or ctr
  end
  return wrk.format("POST", "/v1/traces", { ["Content-Type"] = "application/x-protobuf" }, table.concat(parts))
end
