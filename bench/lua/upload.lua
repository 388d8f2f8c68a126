-- 1 MiB request bodies (POST), Content-Length set by wrk.format.
-- Usage: wrk -s upload.lua URL [-- BYTES]
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("x", 1024 * 1024)

init = function(args)
   if args[1] then
      wrk.body = string.rep("x", tonumber(args[1]))
   end
   req = wrk.format()
end

request = function()
   return req
end
