-- wrk script of `scripts/soak --envoy`: rotates through the soak mix (valid, forged, garbage and
-- missing tokens, forged identity headers, SQL injection / XSS / traversal, JSON and form bodies,
-- health checks) with 100,000 distinct client addresses in X-Forwarded-For (the soak bootstrap
-- takes the client address from it), and counts the statuses.
-- The valid token comes from the environment (SOAK_TOKEN).

local token = os.getenv("SOAK_TOKEN") or ""
local forged = token:sub(1, -3) .. (token:sub(-2, -2) == "A" and "B" or "A") .. token:sub(-1)

local function bearer(t) return { ["Authorization"] = "Bearer " .. t } end
local function with(base, extra)
  local h = {}
  for k, v in pairs(base) do h[k] = v end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- kind, method, path, headers, body
local mix = {
  { "valid", "GET", "/api/items/1", bearer(token) },
  { "valid", "GET", "/api/items/2?page=3", with(bearer(token), { ["X-User-Id"] = "admin", ["X-Jwt-Claim-Role"] = "root" }) },
  { "valid", "GET", "/api/orders", bearer(token) },
  { "forged", "GET", "/api/items/1", bearer(forged) },
  { "garbage", "GET", "/api/items/1", bearer("not.a.token") },
  { "none", "GET", "/api/items/1", {} },
  { "attack", "GET", "/api/items?id=1%27%20OR%20%271%27%3D%271", bearer(token) },
  { "attack", "GET", "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", bearer(token) },
  { "attack", "GET", "/files?name=..%2F..%2F..%2Fetc%2Fpasswd", bearer(token) },
  { "body", "POST", "/api/items", with(bearer(token), { ["Content-Type"] = "application/json" }), '{"item": 7, "note": "hello"}' },
  { "body", "POST", "/api/items", with(bearer(token), { ["Content-Type"] = "application/x-www-form-urlencoded" }), "item=7&comment=1%27%20OR%201%3D1--" },
  { "health", "GET", "/healthz", {} },
}

-- The statuses the mix may end with (valid: 200 or 429 from the per-user/per-IP buckets; bad or
-- missing tokens: 401; attacks: 403; a body: 200/403/429). wrk spreads requests over
-- connections, so a response cannot be tied to its request kind here: the check is that no
-- status outside this set (and no 5xx) occurs; the harness soak checks the status per kind.
intended = { [200] = true, [401] = true, [403] = true, [429] = true }

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  counts = {}
end

function request()
  counter = counter + 1
  local entry = mix[(counter % #mix) + 1]
  local client = (counter * 2 + id) % 100000
  local headers = with(entry[4], {
    ["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(client / 65536), math.floor(client / 256) % 256, client % 256),
  })
  return wrk.format(entry[2], entry[3], headers, entry[5])
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for key, n in pairs(c) do totals[key] = (totals[key] or 0) + n end
  end
  local keys = {}
  for key in pairs(totals) do table.insert(keys, key) end
  table.sort(keys)
  local unintended = 0
  for _, key in ipairs(keys) do
    if not intended[key] then unintended = unintended + totals[key] end
    io.write(string.format("soak status %d %d\n", key, totals[key]))
  end
  io.write(string.format("soak requests %d errors connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status))
  io.write(string.format("soak unintended %d\n", unintended))
end
