-- Wireshark / tshark dissector for shim6's UDP encapsulation (UDP port 5533):
-- each UDP payload is exactly a Shim6 header as RFC 5533 puts it after the
-- IPv6 header (Next Header 140) — a control message (P = 0: I1, R1, I2, R2,
-- R1bis, I2bis, Update Request/Ack, Keepalive, Probe, Error, and the
-- experimental Close/Close Ack 60/61) or a payload extension header (P = 1)
-- followed by the upper-layer packet.
--
-- Use:   tshark -X lua_script:contrib/wireshark/shim6-udp.lua -r capture.pcap
--        wireshark -X lua_script:contrib/wireshark/shim6-udp.lua capture.pcap
-- or copy it to ~/.local/lib/wireshark/plugins/. Another port: Decode As ->
-- SHIM6UDP, or `-d udp.port==PORT,shim6udp`.
-- Fields: shim6udp.p, shim6udp.type, shim6udp.hdrlen, shim6udp.checksum,
-- shim6udp.checksum.status, shim6udp.ctag, shim6udp.inonce, shim6udp.rnonce,
-- shim6udp.option.type, shim6udp.nxt. docs/operations.md "Captures" shows it in use.

local p = Proto("shim6udp", "Shim6 over UDP")

local TYPES = {
  [1] = "I1", [2] = "R1", [3] = "I2", [4] = "R2", [5] = "R1bis", [6] = "I2bis",
  [60] = "Close", [61] = "Close Ack",
  [64] = "Update Request", [65] = "Update Ack", [66] = "Keepalive", [67] = "Probe", [68] = "Error",
}
local OPTIONS = {
  [1] = "Responder Validator", [2] = "Locator List", [3] = "Locator Preferences",
  [4] = "CGA Parameter Data Structure", [5] = "CGA Signature", [6] = "ULID Pair",
  [7] = "Forked Instance Identifier", [10] = "Keepalive Timeout",
}
local STATUS = { [0] = "Unverified", [1] = "Good", [2] = "Bad" }

local f = p.fields
f.p = ProtoField.uint8("shim6udp.p", "P (payload)", base.DEC, { [0] = "control message", [1] = "payload" }, 0x80)
f.type = ProtoField.uint8("shim6udp.type", "Type", base.DEC, TYPES, 0x7f)
f.nxt = ProtoField.uint8("shim6udp.nxt", "Next Header", base.DEC)
f.hdrlen = ProtoField.uint8("shim6udp.hdrlen", "Hdr Ext Len", base.DEC)
f.checksum = ProtoField.uint16("shim6udp.checksum", "Checksum", base.HEX)
f.cstatus = ProtoField.uint8("shim6udp.checksum.status", "Checksum status", base.DEC, STATUS)
f.ctag = ProtoField.uint64("shim6udp.ctag", "Context Tag", base.HEX)
f.inonce = ProtoField.uint32("shim6udp.inonce", "Initiator Nonce", base.HEX)
f.rnonce = ProtoField.uint32("shim6udp.rnonce", "Responder Nonce", base.HEX)
f.reqnonce = ProtoField.uint32("shim6udp.reqnonce", "Request Nonce", base.HEX)
f.errcode = ProtoField.uint8("shim6udp.error.code", "Error Code", base.DEC, nil, 0xfe)
f.pointer = ProtoField.uint16("shim6udp.error.pointer", "Pointer", base.DEC)
f.opttype = ProtoField.uint16("shim6udp.option.type", "Option Type", base.DEC, OPTIONS, 0xfffe)
f.optcrit = ProtoField.uint16("shim6udp.option.critical", "Critical", base.DEC, nil, 0x0001)
f.optlen = ProtoField.uint16("shim6udp.option.length", "Option Length", base.DEC)
f.data = ProtoField.bytes("shim6udp.data", "Data")

local ip_proto = DissectorTable.get("ip.proto")

-- 47-bit context tag at `off` (the bit before it is P or reserved).
local function ctag(tvb, off)
  local hi = bit.band(tvb(off, 2):uint(), 0x7fff)
  return UInt64.new(tvb(off + 2, 4):uint(), hi)
end

-- The Internet checksum over the message (RFC 5533 §5.3: the whole Shim6 header, Hdr Ext Len).
local function checksum_ok(tvb, len)
  local sum = 0
  for i = 0, len - 2, 2 do sum = sum + tvb(i, 2):uint() end
  if len % 2 == 1 then sum = sum + tvb(len - 1, 1):uint() * 256 end
  while sum > 0xffff do sum = bit.band(sum, 0xffff) + bit.rshift(sum, 16) end
  return sum == 0xffff
end

-- Fixed part of each control message after the checksum: where the options start.
local FIXED = {
  [1] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); t:add(f.inonce, tvb(12, 4)); return 16 end,
  [2] = function(t, tvb) t:add(f.inonce, tvb(8, 4)); t:add(f.rnonce, tvb(12, 4)); return 16 end,
  [3] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); t:add(f.inonce, tvb(12, 4)); t:add(f.rnonce, tvb(16, 4)); return 24 end,
  [4] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); t:add(f.inonce, tvb(12, 4)); return 16 end,
  [5] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); t:add(f.rnonce, tvb(12, 4)); return 16 end,
  [6] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); t:add(f.inonce, tvb(12, 4)); t:add(f.rnonce, tvb(16, 4)); return 32 end,
  [60] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); t:add(f.reqnonce, tvb(12, 4)); return 16 end,
  [64] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); t:add(f.reqnonce, tvb(12, 4)); return 16 end,
  [66] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); return 16 end,
  [67] = function(t, tvb) t:add(f.ctag, tvb(6, 6), ctag(tvb, 6)); return nil end,
  [68] = function(t, tvb) t:add(f.errcode, tvb(3, 1)); t:add(f.pointer, tvb(6, 2)); return nil end,
}
FIXED[61] = FIXED[60]
FIXED[65] = FIXED[64]

local function options(tree, tvb, off, stop)
  while off + 4 <= stop do
    local len = tvb(off + 2, 2):uint()
    local total = 4 + len + ((8 - (4 + len) % 8) % 8)
    if off + total > stop then total = stop - off end
    local typ = bit.rshift(tvb(off, 2):uint(), 1)
    local o = tree:add(p, tvb(off, total), "Option: " .. (OPTIONS[typ] or ("type " .. typ)))
    o:add(f.opttype, tvb(off, 2))
    o:add(f.optcrit, tvb(off, 2))
    o:add(f.optlen, tvb(off + 2, 2))
    off = off + total
  end
end

function p.dissector(tvb, pinfo, tree)
  local n = tvb:captured_len()
  if n < 8 then return 0 end
  pinfo.cols.protocol = "SHIM6/UDP"
  local isPayload = bit.band(tvb(2, 1):uint(), 0x80) ~= 0
  if isPayload then
    local t = tree:add(p, tvb(0, 8), "Shim6 payload extension header")
    t:add(f.p, tvb(2, 1))
    t:add(f.nxt, tvb(0, 1))
    t:add(f.ctag, tvb(2, 6), ctag(tvb, 2))
    pinfo.cols.info = "Payload, context tag 0x" .. ctag(tvb, 2):tohex():gsub("^0+", "")
    if n > 8 then
      -- The upper layer's own dissector; a packet it cannot read (or cut short by the capture) stays raw data.
      local ok, known = pcall(function() return ip_proto:try(tvb(0, 1):uint(), tvb(8):tvb(), pinfo, tree) end)
      if not ok or not known then t:add(f.data, tvb(8)) end
    end
    return n
  end
  local typ = bit.band(tvb(2, 1):uint(), 0x7f)
  local len = (tvb(1, 1):uint() + 1) * 8
  local name = TYPES[typ] or ("type " .. typ)
  local t = tree:add(p, tvb(0, math.min(len, n)), "Shim6 " .. name)
  t:add(f.nxt, tvb(0, 1))
  t:add(f.hdrlen, tvb(1, 1))
  t:add(f.p, tvb(2, 1))
  t:add(f.type, tvb(2, 1))
  t:add(f.checksum, tvb(4, 2))
  local status = 0
  if len <= n then status = checksum_ok(tvb, len) and 1 or 2 end
  t:add(f.cstatus, status):set_generated()
  pinfo.cols.info = name .. (status == 2 and " [bad checksum]" or "")
  local fixed = FIXED[typ]
  if fixed and len <= n then
    local ok, optStart = pcall(fixed, t, tvb)
    if ok and optStart and optStart < len then options(t, tvb, optStart, len) end
  end
  return n
end

DissectorTable.get("udp.port"):add(5533, p)
