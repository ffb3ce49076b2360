-- What the bench/wrk scripts share (loaded by them with dofile). Written for wrk 4.1 (Debian's
-- package), whose scripts run in one Lua state per thread plus one for setup() and done().
--
-- The configuration is a Lua file written by bench/loadgen.py, named by BENCH_WRK_CONFIG:
--   servers   {{host=, port=}, ...}: thread n sends to server (n - 1) % #servers + 1
--   path      request path (POST)
--   tokens    bearer tokens, rotated per request
--   quota     > 0: a burst, each thread sends exactly `quota` requests, then stops;
--             0: requests back to back until wrk's -d ends
--   classify  {{pattern, label}, ...}: the first Lua pattern found in a 200 body names its
--             outcome (a rule without a label: the pattern's capture does); a 200 matching none
--             is "unrecognised", any other status "HTTP <status>"
--   out       where done() writes the results (JSON)
--   seed, nonce and what the benchmark's own script needs
-- Each thread counts requests sent, responses, outcomes and statuses, and keeps a few bodies of
-- unrecognised responses; done() collects them with thread:get and writes them with wrk's
-- summary and latency percentiles to `out`.

config = dofile(os.getenv("BENCH_WRK_CONFIG"))

local threads = {}

function setup(thread)
   local n = #threads + 1
   local server = config.servers[(n - 1) % #config.servers + 1]
   thread.addr = wrk.lookup(server.host, tostring(server.port))[1]
   thread:set("id", n)
   thread:set("host", server.host .. ":" .. server.port)
   table.insert(threads, thread)
end

function init(args)
   -- wrk calls the first thread's request() once before the run to inspect a request (it
   -- counts pipelined ones); that one is never sent.
   inspected = id ~= 1
   sent, responses, planned = 0, 0, 0
   counts, statuses, samples = {}, {}, {}
   math.randomseed(config.seed + id)
   if prepare then prepare() end
end

-- Formats a POST of `body` to config.path with the n-th token of the rotation.
function post(body, n)
   local tokens = config.tokens
   return wrk.format("POST", config.path, {
      ["Host"] = host,
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. tokens[(n + id) % #tokens + 1],
   }, body)
end

function request()
   if not inspected then
      inspected = true
      return make_request(0)
   end
   sent = sent + 1
   return make_request(sent)
end

if config.quota > 0 then
   -- Called before every request wrk is about to send: the first `quota` go at once, any later
   -- one (a connection whose response came back) waits an hour, i.e. never: the thread stops
   -- when its `quota` responses are in.
   function delay()
      planned = planned + 1
      if planned <= config.quota then return 0 end
      return 3600000
   end
end

function response(status, headers, body)
   responses = responses + 1
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   local label
   if status == 200 then
      for _, rule in ipairs(config.classify) do
         local first, _, capture = string.find(body, rule[1])
         if first then
            label = rule[2] or capture
            break
         end
      end
      label = label or "unrecognised"
   else
      label = "HTTP " .. key
   end
   counts[label] = (counts[label] or 0) + 1
   if label == "unrecognised" or status ~= 200 then
      if #samples < 3 then table.insert(samples, key .. " " .. string.sub(body, 1, 400)) end
   end
   if config.quota > 0 and responses >= config.quota then
      wrk.thread:stop()
   end
end

local function encode(value)
   local kind = type(value)
   if kind == "number" then
      if value == math.floor(value) and math.abs(value) < 2^53 then return string.format("%d", value) end
      return string.format("%.17g", value)
   elseif kind == "string" then
      return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
   elseif kind == "boolean" then
      return tostring(value)
   elseif kind == "table" then
      local parts = {}
      if #value > 0 then
         for _, item in ipairs(value) do table.insert(parts, encode(item)) end
         return "[" .. table.concat(parts, ",") .. "]"
      end
      for k, v in pairs(value) do table.insert(parts, encode(tostring(k)) .. ":" .. encode(v)) end
      return "{" .. table.concat(parts, ",") .. "}"
   end
   return "null"
end

function done(summary, latency, requests)
   local out = {
      summary = summary,  -- duration (us), requests, bytes, errors {connect, read, write, status, timeout}
      latency_us = {
         min = latency.min, max = latency.max, mean = latency.mean,
         p50 = latency:percentile(50), p90 = latency:percentile(90), p99 = latency:percentile(99),
         p999 = latency:percentile(99.9),
      },
      threads = {},
   }
   for n, thread in ipairs(threads) do
      out.threads[n] = {
         id = thread:get("id"), host = thread:get("host"), sent = thread:get("sent"),
         responses = thread:get("responses"), counts = thread:get("counts"),
         statuses = thread:get("statuses"), samples = thread:get("samples"),
      }
   end
   local file = assert(io.open(config.out, "w"))
   file:write(encode(out))
   file:close()
end
