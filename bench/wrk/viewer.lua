-- `{ viewer { uid role } }` for bench.viewer (see lib.lua), against the app and against the bare
-- Starlette endpoint alike. The requests (one per token of the rotation) are formatted once per
-- thread, so the client only picks the next one.
--   body   the JSON body

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "lib.lua")

local prepared = {}

function prepare()
   for n = 1, #config.tokens do prepared[n] = post(config.body, n) end
end

function make_request(n)
   return prepared[n % #prepared + 1]
end
