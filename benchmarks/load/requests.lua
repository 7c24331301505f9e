-- Sends the requests listed in a file, one after the other, and prints one JSON line at the end.
--   wrk -s requests.lua http://127.0.0.1:8000 -- REQUESTS_FILE
-- Each line of REQUESTS_FILE is METHOD<TAB>PATH<TAB>AUTHORIZATION<TAB>BODY, "-" for none.

local next_thread = 0

function setup(thread)
  thread:set("first", next_thread * 7919)
  next_thread = next_thread + 1
end

local prepared = {}
local index = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    local method, path, authorization, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.+)$")
    local headers = {}
    if authorization ~= "-" then
      headers["Authorization"] = authorization
    end
    if body == "-" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    prepared[#prepared + 1] = wrk.format(method, path, headers, body)
  end
  file:close()
  index = (first or 0) % #prepared
end

function request()
  index = index % #prepared + 1
  return prepared[index]
end

function done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean
  ))
end
