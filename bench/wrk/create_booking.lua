-- createBooking over HTTP for bench.booking_contention and bench.booking_throughput (see lib.lua).
-- Each request: the next token of the rotation (agents of several agencies), a unique
-- idempotency key (run nonce, thread, counter), a room type and a stay drawn from the config.
--   body        string.format pattern of the JSON body, %s for: idempotency key, room type id,
--               check-in, check-out
--   room_types  global ids to draw from
--   stays       {{check_in, check_out}, ...} to draw from
-- Outcomes: GraphQL error / BookingGroup / SoldOut / another UserError (by __typename).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "lib.lua")

function make_request(n)
   local room_type = config.room_types[math.random(#config.room_types)]
   local stay = config.stays[math.random(#config.stays)]
   local key = config.nonce .. "-" .. id .. "-" .. n
   return post(string.format(config.body, key, room_type, stay[1], stay[2]), n)
end
