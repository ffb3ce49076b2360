-- Fixed GraphQL requests for bench.pricing's quote vs createBooking pre-check (see lib.lua). Each
-- request: the next token of the rotation and one of `bodies` drawn at random; a body is a
-- string.format pattern whose one %s (if any) takes a unique idempotency key (run nonce, thread,
-- counter), so createBooking never replays an earlier request; a body without %s is sent as is.
--   bodies  the JSON bodies ("%" doubled)

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "lib.lua")

function make_request(n)
   local body = config.bodies[math.random(#config.bodies)]
   return post(string.format(body, config.nonce .. "-" .. id .. "-" .. n), n)
end
