-- rchat.lua: a Wireshark dissector for the encrypted mode of rchat (wire protocol version 1).
--
-- Written from docs/PROTOCOL.md. Every frame is a 10-byte header ("RCHT", version 1, type,
-- body length) and a body. This dissector shows each field, computes the fingerprint of
-- every public key (in a HELLO, and for each member of a room in ROSTER and JOINED) and the
-- digest of every ciphertext copy of a ROOM MESSAGE, reassembles frames split over TCP
-- segments and splits segments that hold several frames. It is registered on TCP port 9999 and, as a heuristic, on any other
-- TCP port whose data starts with a valid rchat header.
--
-- Plaintext mode has no framing (just lines of text) and is left to Wireshark's "Data" or
-- "Line-based text" display.
--
-- Display filter fields start with "rchat." (rchat.type, rchat.seq, rchat.fingerprint, ...).
-- Install: see wireshark/README.md.

local rchat = Proto("rchat", "rchat encrypted chat")

local HEADER_LEN = 10
local MAGIC = "RCHT"
local VERSION = 1
local DEFAULT_PORT = 9999

local TYPE_NAMES = {
    [1] = "HELLO", [2] = "AUTH", [3] = "MESSAGE", [4] = "BYE", [5] = "BUSY",
    [6] = "ROSTER", [7] = "JOINED", [8] = "LEFT", [9] = "ROOM MESSAGE",
}
local MAX_BODY = {
    [1] = 1092, [2] = 514, [3] = 135950, [4] = 522, [5] = 258,
    [6] = 109923, [7] = 1615, [8] = 780, [9] = 858827,
}
local LARGEST_BODY = 858827
local MAX_NAME = 64
local MAX_KEY = 1024
local MAX_SIGNATURE = 512
local MAX_BLOCKS = 1058
local MAX_BLOCK_LEN = 512
local MAX_REASON = 256

-- The room (docs/PROTOCOL.md, "The room").
local MODE_ROOM = 2
local MAX_PEOPLE = 100           -- members of a ROSTER, copies of a ROOM MESSAGE
local MAX_ROOM_BLOCKS = 67       -- blocks of one copy
local MAX_ROOM_CIPHERTEXT = 8576 -- bytes of blocks of one copy
local FLAG_PRIVATE = 1
local FORM_CIPHERTEXT = 0
local FORM_DIGEST = 1

local MODE_NAMES = {
    [1] = "RSA-OAEP-SHA256 messages, RSA-PSS-SHA256 signatures",
    [2] = "room host, RSA-OAEP-SHA256 messages, RSA-PSS-SHA256 signatures",
}
local FORM_NAMES = { [FORM_CIPHERTEXT] = "ciphertext", [FORM_DIGEST] = "digest" }

---------------------------------------------------------------------------------------------
-- Fields
---------------------------------------------------------------------------------------------

local f = {
    magic = ProtoField.string("rchat.magic", "Magic"),
    version = ProtoField.uint8("rchat.version", "Version", base.DEC),
    type = ProtoField.uint8("rchat.type", "Type", base.DEC, TYPE_NAMES),
    length = ProtoField.uint32("rchat.length", "Body length", base.DEC),

    mode = ProtoField.uint8("rchat.mode", "Mode", base.DEC, MODE_NAMES),
    name_length = ProtoField.uint8("rchat.name_length", "Name length", base.DEC),
    name = ProtoField.string("rchat.name", "Name", base.UNICODE),
    key_length = ProtoField.uint16("rchat.key_length", "Public key length", base.DEC),
    key = ProtoField.bytes("rchat.key", "Public key (SubjectPublicKeyInfo, DER)"),
    fingerprint = ProtoField.string("rchat.fingerprint", "Fingerprint"),
    key_bits = ProtoField.uint16("rchat.key_bits", "RSA modulus size (bits)", base.DEC),

    seq = ProtoField.uint64("rchat.seq", "Sequence number", base.DEC),
    block_count = ProtoField.uint16("rchat.block_count", "Block count", base.DEC),
    block_length = ProtoField.uint16("rchat.block_length", "Block length", base.DEC),
    blocks = ProtoField.bytes("rchat.blocks", "Ciphertext blocks"),
    block = ProtoField.bytes("rchat.block", "Ciphertext block"),

    sig_length = ProtoField.uint16("rchat.signature_length", "Signature length", base.DEC),
    signature = ProtoField.bytes("rchat.signature", "Signature (RSA-PSS-SHA256)"),

    reason_length = ProtoField.uint16("rchat.reason_length", "Reason length", base.DEC),
    reason = ProtoField.string("rchat.reason", "Reason", base.UNICODE),

    -- ROSTER, JOINED, LEFT
    room_id = ProtoField.bytes("rchat.room_id", "Room id"),
    your_id = ProtoField.uint16("rchat.your_id", "Your id", base.DEC),
    your_name_length = ProtoField.uint8("rchat.your_name_length", "Your name length", base.DEC),
    your_name = ProtoField.string("rchat.your_name", "Your name in the room", base.UNICODE),
    member_count = ProtoField.uint16("rchat.member_count", "Member count", base.DEC),
    member = ProtoField.none("rchat.member", "Member"),
    member_id = ProtoField.uint16("rchat.member_id", "Member id", base.DEC),

    -- ROOM MESSAGE
    sender_id = ProtoField.uint16("rchat.sender_id", "Sender id", base.DEC),
    flags = ProtoField.uint8("rchat.flags", "Flags", base.HEX),
    private = ProtoField.bool("rchat.flags.private", "Private (/msg to one person)", 8, nil,
        FLAG_PRIVATE),
    copy_count = ProtoField.uint16("rchat.copy_count", "Copy count", base.DEC),
    copy = ProtoField.none("rchat.copy", "Copy"),
    recipient_id = ProtoField.uint16("rchat.recipient_id", "Recipient id", base.DEC),
    copy_form = ProtoField.uint8("rchat.copy_form", "Form", base.DEC, FORM_NAMES),
    digest = ProtoField.bytes("rchat.digest", "Digest (SHA-256 of the copy's ciphertext fields)"),
    computed_digest = ProtoField.string("rchat.computed_digest",
        "SHA-256 of the ciphertext fields (what the signature covers)"),
}
rchat.fields = {
    f.magic, f.version, f.type, f.length, f.mode, f.name_length, f.name, f.key_length, f.key,
    f.fingerprint, f.key_bits, f.seq, f.block_count, f.block_length, f.blocks, f.block, f.sig_length,
    f.signature, f.reason_length, f.reason,
    f.room_id, f.your_id, f.your_name_length, f.your_name, f.member_count, f.member, f.member_id,
    f.sender_id, f.flags, f.private, f.copy_count, f.copy, f.recipient_id, f.copy_form, f.digest,
    f.computed_digest,
}

local ex = {
    bad_version = ProtoExpert.new("rchat.bad_version", "Unknown protocol version",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_type = ProtoExpert.new("rchat.bad_type", "Unknown frame type",
        expert.group.MALFORMED, expert.severity.ERROR),
    too_long = ProtoExpert.new("rchat.too_long", "Body length over the maximum for this type",
        expert.group.MALFORMED, expert.severity.ERROR),
    truncated = ProtoExpert.new("rchat.truncated", "A field runs past the end of the frame",
        expert.group.MALFORMED, expert.severity.ERROR),
    trailing = ProtoExpert.new("rchat.trailing", "Bytes left over after the last field",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_value = ProtoExpert.new("rchat.bad_value", "Field value outside what the protocol allows",
        expert.group.MALFORMED, expert.severity.WARN),
    unsigned = ProtoExpert.new("rchat.unsigned", "Empty signature: rchat refuses this frame",
        expert.group.SECURITY, expert.severity.WARN),
    not_rchat = ProtoExpert.new("rchat.not_rchat", "Bytes that do not start an rchat frame",
        expert.group.MALFORMED, expert.severity.ERROR),
    internal = ProtoExpert.new("rchat.internal", "The dissector could not decode this frame",
        expert.group.UNDECODED, expert.severity.WARN),
}
rchat.experts = {
    ex.bad_version, ex.bad_type, ex.too_long, ex.truncated, ex.trailing, ex.bad_value,
    ex.unsigned, ex.not_rchat, ex.internal,
}

---------------------------------------------------------------------------------------------
-- SHA-256 and base64, in plain Lua (Wireshark's Lua API offers no hash function).
-- Works with Lua 5.2 (bit32), LuaBitOp ("bit") and Lua 5.3+ integer operators.
---------------------------------------------------------------------------------------------

local TWO32 = 4294967296
local band, bxor, bnot, rshift, rrotate
do
    local lib = bit32 or bit
    if lib then
        -- LuaBitOp returns signed results; "% TWO32" brings every result into 0 .. 2^32-1.
        local rot = lib.rrotate or lib.ror
        band = function(a, b) return lib.band(a, b) % TWO32 end
        bxor = function(a, b) return lib.bxor(a, b) % TWO32 end
        bnot = function(a) return lib.bnot(a) % TWO32 end
        rshift = function(a, n) return lib.rshift(a, n) % TWO32 end
        rrotate = function(a, n) return rot(a, n) % TWO32 end
    else
        local ops = load([[
            local M = 0xffffffff
            return function(a, b) return (a & b) & M end,
                   function(a, b) return (a ~ b) & M end,
                   function(a) return (~a) & M end,
                   function(a, n) return (a & M) >> n end,
                   function(a, n) a = a & M; return ((a >> n) | (a << (32 - n))) & M end
        ]])
        band, bxor, bnot, rshift, rrotate = ops()
    end
end

local K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

-- SHA-256 of a Lua string; returns the 32-byte digest as a Lua string.
local function sha256(msg)
    local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
    local bits = #msg * 8
    local tail = {}
    for i = 7, 0, -1 do
        tail[#tail + 1] = string.char(math.floor(bits / 2 ^ (8 * i)) % 256)
    end
    msg = msg .. "\128" .. string.rep("\0", (55 - #msg) % 64) .. table.concat(tail)

    local w = {}
    for chunk = 1, #msg, 64 do
        for i = 0, 15 do
            local b1, b2, b3, b4 = msg:byte(chunk + 4 * i, chunk + 4 * i + 3)
            w[i] = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
        end
        for i = 16, 63 do
            local x, y = w[i - 15], w[i - 2]
            local s0 = bxor(bxor(rrotate(x, 7), rrotate(x, 18)), rshift(x, 3))
            local s1 = bxor(bxor(rrotate(y, 17), rrotate(y, 19)), rshift(y, 10))
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) % TWO32
        end
        local a, b, c, d, e, f_, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
        for i = 0, 63 do
            local s1 = bxor(bxor(rrotate(e, 6), rrotate(e, 11)), rrotate(e, 25))
            local ch = bxor(band(e, f_), band(bnot(e), g))
            local t1 = (hh + s1 + ch + K[i + 1] + w[i]) % TWO32
            local s0 = bxor(bxor(rrotate(a, 2), rrotate(a, 13)), rrotate(a, 22))
            local maj = bxor(bxor(band(a, b), band(a, c)), band(b, c))
            local t2 = (s0 + maj) % TWO32
            hh, g, f_, e, d, c, b, a = g, f_, e, (d + t1) % TWO32, c, b, a, (t1 + t2) % TWO32
        end
        h[1] = (h[1] + a) % TWO32
        h[2] = (h[2] + b) % TWO32
        h[3] = (h[3] + c) % TWO32
        h[4] = (h[4] + d) % TWO32
        h[5] = (h[5] + e) % TWO32
        h[6] = (h[6] + f_) % TWO32
        h[7] = (h[7] + g) % TWO32
        h[8] = (h[8] + hh) % TWO32
    end

    local out = {}
    for i = 1, 8 do
        local v = h[i]
        out[#out + 1] = string.char(math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256,
            math.floor(v / 256) % 256, v % 256)
    end
    return table.concat(out)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Standard base64 without "=" padding, as in rchat's fingerprints.
local function base64_unpadded(s)
    local out = {}
    for i = 1, #s, 3 do
        local b1, b2, b3 = s:byte(i, i + 2)
        local n = b1 * 65536 + (b2 or 0) * 256 + (b3 or 0)
        local chars = b3 and 4 or (b2 and 3 or 2)
        for j = 1, chars do
            local idx = math.floor(n / 2 ^ (6 * (4 - j))) % 64
            out[#out + 1] = B64:sub(idx + 1, idx + 1)
        end
    end
    return table.concat(out)
end

-- The rchat fingerprint of a SubjectPublicKeyInfo DER (a Lua string).
local function fingerprint(spki)
    return "SHA256:" .. base64_unpadded(sha256(spki))
end

---------------------------------------------------------------------------------------------
-- The size of an RSA key from its SubjectPublicKeyInfo DER:
-- SEQUENCE { SEQUENCE { algorithm }, BIT STRING { SEQUENCE { INTEGER n, INTEGER e } } }.
-- Returns nil for anything that does not have this shape.
---------------------------------------------------------------------------------------------

-- The content of the DER element with tag `tag` at position `pos` (1-based) of `s`:
-- its first and one-past-last positions, or nil.
local function der_element(s, pos, tag)
    if s:byte(pos) ~= tag then return nil end
    local first = s:byte(pos + 1)
    if not first then return nil end
    local len, start = first, pos + 2
    if first >= 128 then
        local n = first - 128
        if n < 1 or n > 3 then return nil end
        len = 0
        for i = 1, n do
            local b = s:byte(pos + 1 + i)
            if not b then return nil end
            len = len * 256 + b
        end
        start = pos + 2 + n
    end
    if start + len - 1 > #s then return nil end
    return start, start + len
end

local function rsa_bits(spki)
    local outer = der_element(spki, 1, 0x30)
    if not outer then return nil end
    local _, alg_end = der_element(spki, outer, 0x30)
    if not alg_end then return nil end
    local bitstring = der_element(spki, alg_end, 0x03)
    if not bitstring then return nil end
    local key = der_element(spki, bitstring + 1, 0x30) -- after the "unused bits" byte
    if not key then return nil end
    local n, n_end = der_element(spki, key, 0x02)
    if not n then return nil end
    while n < n_end and spki:byte(n) == 0 do n = n + 1 end
    if n >= n_end then return nil end
    local bits, top = (n_end - n) * 8, spki:byte(n)
    while top < 128 do
        bits = bits - 1
        top = top * 2
    end
    return bits
end

---------------------------------------------------------------------------------------------
-- Frame bodies
---------------------------------------------------------------------------------------------

-- A cursor over a frame body that never reads past its end: each take(n) returns the range
-- (true for n == 0, which has no range), or nil after adding an expert item to the tree.
local function cursor(tvb, start, stop, tree)
    local c = { pos = start, ok = true }
    function c.take(n, what)
        if not c.ok then return nil end
        if n < 0 or c.pos + n > stop then
            tree:add_proto_expert_info(ex.truncated,
                string.format("%s: %d bytes needed, %d left", what, n, stop - c.pos))
            c.ok = false
            return nil
        end
        if n == 0 then return true end
        local r = tvb(c.pos, n)
        c.pos = c.pos + n
        return r
    end
    -- Stop reading: what follows cannot be delimited (the reason is already in the tree).
    function c.stop()
        c.ok = false
    end
    -- A subtree item for a part of the body (a member, a copy) that starts here: it covers
    -- the rest of the body until c.close gives it its length. With no byte left, the part's
    -- fields go to `parent` (the first take then reports the truncation).
    function c.open(parent, field)
        if not c.ok or c.pos >= stop then return parent, nil end
        return parent:add(field, tvb(c.pos, stop - c.pos)), c.pos
    end
    function c.close(item, from)
        if from and c.pos > from then item:set_len(c.pos - from) end
    end
    -- The bytes from position `from` to here, or nil if there are none.
    function c.since(from)
        if c.pos <= from then return nil end
        return tvb(from, c.pos - from)
    end
    function c.finish()
        if c.ok and c.pos < stop then
            tree:add_proto_expert_info(ex.trailing,
                string.format("%d bytes left over after the last field", stop - c.pos))
        end
    end
    return c
end

-- Text from the wire made safe for the Info column: control characters, quotes and
-- backslashes become \xNN escapes.
local function printable(text)
    return (text:gsub('[%c"\\]', function(ch) return string.format("\\x%02x", ch:byte()) end))
end

local function hex(bytes)
    return (bytes:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

local function check_max(item, value, max, what)
    if value > max then
        item:add_proto_expert_info(ex.bad_value, string.format("%s %d is over %d", what, value, max))
    end
end

-- "1 member", "3 members".
local function plural(n, word)
    return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

-- Signature length and signature, shared by every signed frame.
local function dissect_signature(c, tree)
    local r = c.take(2, "signature length")
    if not r then return end
    local n = r:uint()
    local item = tree:add(f.sig_length, r)
    check_max(item, n, MAX_SIGNATURE, "signature length")
    if n == 0 then
        item:add_proto_expert_info(ex.unsigned)
        return
    end
    local s = c.take(n, "signature")
    if s then tree:add(f.signature, s) end
end

local function dissect_seq(c, tree)
    local r = c.take(8, "sequence number")
    if not r then return nil end
    tree:add(f.seq, r)
    return r:uint64()
end

-- A name: length (1 byte) and UTF-8 text. Returns the name ("" when empty), or nil.
local function dissect_name(c, tree, len_field, name_field, what)
    local r = c.take(1, what .. " length")
    if not r then return nil end
    local n = r:uint()
    local item = tree:add(len_field, r)
    check_max(item, n, MAX_NAME, what .. " length")
    r = c.take(n, what)
    if not r then return nil end
    if n == 0 then return "" end
    tree:add_packet_field(name_field, r, ENC_UTF_8)
    return r:string(ENC_UTF_8)
end

-- A public key: length (2 bytes) and SubjectPublicKeyInfo DER, with its size and fingerprint
-- computed. Returns the fingerprint, false for an empty key, nil when truncated.
local function dissect_key(c, tree)
    local r = c.take(2, "key length")
    if not r then return nil end
    local k = r:uint()
    local item = tree:add(f.key_length, r)
    check_max(item, k, MAX_KEY, "key length")
    local key = c.take(k, "public key")
    if not key then return nil end
    if k == 0 then
        item:add_proto_expert_info(ex.bad_value, "empty public key")
        return false
    end
    local key_item = tree:add(f.key, key)
    local spki = key:raw()
    local bits = rsa_bits(spki)
    if bits then
        tree:add(f.key_bits, key, bits):set_generated()
    else
        key_item:add_proto_expert_info(ex.bad_value, "not an RSA SubjectPublicKeyInfo")
    end
    local fp = fingerprint(spki)
    tree:add(f.fingerprint, key, fp):set_generated()
    return fp
end

-- Ciphertext blocks, `count` blocks of `blen` bytes in the range `all`, one item each.
local function add_blocks(tree, all, count, blen)
    if count == 0 or blen == 0 then return end
    local sub = tree:add(f.blocks, all)
    sub:set_text(string.format("Ciphertext blocks: %d x %d bytes", count, blen))
    for i = 0, count - 1 do
        local b = all(i * blen, blen)
        sub:add(f.block, b):set_text(string.format("Block %d: %d bytes", i + 1, blen))
    end
end

local function dissect_hello(c, tree, summary)
    local r = c.take(1, "mode")
    if not r then return end
    local mode = r:uint()
    local item = tree:add(f.mode, r)
    if MODE_NAMES[mode] == nil then
        item:add_proto_expert_info(ex.bad_value, "unknown mode")
    end
    if mode == MODE_ROOM then
        summary[#summary + 1] = "(room host)"
    end
    local name = dissect_name(c, tree, f.name_length, f.name, "name")
    if not name then return end
    summary[#summary + 1] = "name=" .. printable(name)
    local fp = dissect_key(c, tree)
    if fp then
        summary[#summary + 1] = fp
    end
end

local function dissect_auth(c, tree)
    dissect_signature(c, tree)
end

local function dissect_message(c, tree, summary)
    local seq = dissect_seq(c, tree)
    if not seq then return end
    summary[#summary + 1] = "seq=" .. tostring(seq)
    local r = c.take(2, "block count")
    if not r then return end
    local count = r:uint()
    local item = tree:add(f.block_count, r)
    summary[#summary + 1] = "blocks=" .. count
    if count == 0 then
        item:add_proto_expert_info(ex.bad_value, "a message has at least one block")
    end
    check_max(item, count, MAX_BLOCKS, "block count")
    r = c.take(2, "block length")
    if not r then return end
    local blen = r:uint()
    item = tree:add(f.block_length, r)
    check_max(item, blen, MAX_BLOCK_LEN, "block length")
    if blen == 0 then
        item:add_proto_expert_info(ex.bad_value, "empty blocks")
    end
    local all = c.take(count * blen, "ciphertext blocks")
    if not all then return end
    add_blocks(tree, all, count, blen)
    dissect_signature(c, tree)
end

local function dissect_bye(c, tree, summary)
    local seq = dissect_seq(c, tree)
    if not seq then return end
    summary[#summary + 1] = "seq=" .. tostring(seq)
    dissect_signature(c, tree)
end

local function dissect_busy(c, tree, summary)
    local r = c.take(2, "reason length")
    if not r then return end
    local n = r:uint()
    local item = tree:add(f.reason_length, r)
    check_max(item, n, MAX_REASON, "reason length")
    r = c.take(n, "reason")
    if not r then return end
    if n > 0 then
        tree:add_packet_field(f.reason, r, ENC_UTF_8)
        summary[#summary + 1] = '"' .. printable(r:string(ENC_UTF_8)) .. '"'
    end
end

---------------------------------------------------------------------------------------------
-- The room's frames
---------------------------------------------------------------------------------------------

-- MEMBER (in ROSTER and JOINED): id, name, key, as a subtree. Returns id and name, or nil.
local function dissect_member(c, tree)
    local sub, from = c.open(tree, f.member)
    local r = c.take(2, "member id")
    if not r then return nil end
    local id = r:uint()
    sub:add(f.member_id, r)
    local name = dissect_name(c, sub, f.name_length, f.name, "member name")
    if not name then return nil end
    local fp = dissect_key(c, sub)
    c.close(sub, from)
    if fp == nil then return nil end
    if from then
        sub:append_text(string.format(" %d: %s%s", id, printable(name), fp and (", " .. fp) or ""))
    end
    return id, name
end

local function dissect_roster(c, tree, summary)
    if not dissect_seq(c, tree) then return end
    local r = c.take(32, "room id")
    if not r then return end
    tree:add(f.room_id, r)
    r = c.take(2, "your id")
    if not r then return end
    local you = r:uint()
    tree:add(f.your_id, r)
    local name = dissect_name(c, tree, f.your_name_length, f.your_name, "your name")
    if not name then return end
    r = c.take(2, "member count")
    if not r then return end
    local count = r:uint()
    local item = tree:add(f.member_count, r)
    check_max(item, count, MAX_PEOPLE, "member count")
    summary[1] = "ROSTER:"
    summary[#summary + 1] = string.format("%s for %s (id %d)", plural(count, "member"),
        printable(name), you)
    -- A count over the limit is still followed as far as the bytes go.
    for _ = 1, count do
        if not dissect_member(c, tree) then return end
    end
    dissect_signature(c, tree)
end

local function dissect_joined(c, tree, summary)
    if not dissect_seq(c, tree) then return end
    local id, name = dissect_member(c, tree)
    if not id then return end
    summary[#summary + 1] = string.format("%s (id %d)", printable(name), id)
    dissect_signature(c, tree)
end

local function dissect_left(c, tree, summary)
    if not dissect_seq(c, tree) then return end
    local r = c.take(2, "member id")
    if not r then return end
    local id = r:uint()
    tree:add(f.member_id, r)
    summary[#summary + 1] = tostring(id)
    r = c.take(1, "reason length")
    if not r then return end
    local n = r:uint()
    tree:add(f.reason_length, r, n) -- one byte here, two in BUSY
    r = c.take(n, "reason")
    if not r then return end
    local reason = ""
    if n > 0 then
        tree:add_packet_field(f.reason, r, ENC_UTF_8)
        reason = r:string(ENC_UTF_8)
    end
    summary[#summary] = string.format("%d: %s", id, printable(reason))
    dissect_signature(c, tree)
end

-- COPY (in ROOM MESSAGE): recipient id, form, then the blocks or their digest, as a subtree.
-- Returns the recipient id, its tree item and the form, or nil when the rest of the frame
-- cannot be read.
local function dissect_copy(c, tree)
    local sub, from = c.open(tree, f.copy)
    local r = c.take(2, "recipient id")
    if not r then return nil end
    local id = r:uint()
    local id_item = sub:add(f.recipient_id, r)
    r = c.take(1, "copy form")
    if not r then return nil end
    local form = r:uint()
    local form_item = sub:add(f.copy_form, r)
    local what
    if form == FORM_CIPHERTEXT then
        local fields_at = c.pos
        r = c.take(2, "block count")
        if not r then return nil end
        local count = r:uint()
        local item = sub:add(f.block_count, r)
        if count == 0 or count > MAX_ROOM_BLOCKS then
            item:add_proto_expert_info(ex.bad_value,
                string.format("block count %d is not within 1 to %d", count, MAX_ROOM_BLOCKS))
        end
        r = c.take(2, "block length")
        if not r then return nil end
        local blen = r:uint()
        item = sub:add(f.block_length, r)
        if blen == 0 or blen > MAX_BLOCK_LEN then
            item:add_proto_expert_info(ex.bad_value,
                string.format("block length %d is not within 1 to %d", blen, MAX_BLOCK_LEN))
        elseif count * blen > MAX_ROOM_CIPHERTEXT then
            item:add_proto_expert_info(ex.bad_value, string.format(
                "%d blocks of %d bytes is over %d bytes", count, blen, MAX_ROOM_CIPHERTEXT))
        end
        local all = c.take(count * blen, "ciphertext blocks")
        if not all then return nil end
        add_blocks(sub, all, count, blen)
        -- What stands for this copy in the signature, and in the frames the relay sends the
        -- other recipients: compare it with their "Digest" field.
        local fields = c.since(fields_at)
        sub:add(f.computed_digest, fields, hex(sha256(fields:raw()))):set_generated()
        what = string.format("ciphertext, %s of %d bytes", plural(count, "block"), blen)
    elseif form == FORM_DIGEST then
        r = c.take(32, "copy digest")
        if not r then return nil end
        sub:add(f.digest, r)
        what = "digest only"
    else
        form_item:add_proto_expert_info(ex.bad_value, string.format(
            "copy form %d is neither 0 (ciphertext) nor 1 (digest): the rest cannot be read", form))
        c.close(sub, from)
        c.stop()
        return nil
    end
    c.close(sub, from)
    if from then
        sub:append_text(string.format(" for %d: %s", id, what))
    end
    return id, id_item, form
end

local function dissect_room_message(c, tree, summary)
    local r = c.take(2, "sender id")
    if not r then return end
    local sender = r:uint()
    tree:add(f.sender_id, r)
    local seq = dissect_seq(c, tree)
    if not seq then return end
    r = c.take(1, "flags")
    if not r then return end
    local flags = r:uint()
    local flags_item = tree:add(f.flags, r)
    flags_item:add(f.private, r)
    local private = flags % 2 == FLAG_PRIVATE
    if flags - flags % 2 ~= 0 then
        flags_item:add_proto_expert_info(ex.bad_value,
            string.format("unknown flags 0x%02x (only bit 0, private, is defined)", flags))
    end
    r = c.take(2, "copy count")
    if not r then return end
    local count = r:uint()
    local count_item = tree:add(f.copy_count, r)
    if count == 0 or count > MAX_PEOPLE then
        count_item:add_proto_expert_info(ex.bad_value,
            string.format("copy count %d is not within 1 to %d", count, MAX_PEOPLE))
    end
    if private and count ~= 1 then
        flags_item:add_proto_expert_info(ex.bad_value,
            string.format("a private message has one copy, not %d", count))
    end
    summary[#summary + 1] = string.format("from %d seq %s to %s%s", sender, tostring(seq),
        plural(count, "recipient"), private and " (private)" or "")
    local last, full, digests = nil, {}, 0
    -- A count over the limit is still followed as far as the bytes go.
    for _ = 1, count do
        local id, id_item, form = dissect_copy(c, tree)
        if not id then return end
        if last and id <= last then
            id_item:add_proto_expert_info(ex.bad_value, string.format(
                "recipient %d after recipient %d: copies go in increasing id", id, last))
        end
        last = id
        if form == FORM_CIPHERTEXT then
            full[#full + 1] = tostring(id)
        else
            digests = digests + 1
        end
    end
    -- What the relay sends one recipient: its copy in full, the others as digests.
    if digests > 0 then
        summary[#summary + 1] = #full == 0 and "(digests only)"
            or string.format("(ciphertext for %s only)", table.concat(full, ", "))
    end
    dissect_signature(c, tree)
end

local BODY = {
    [1] = dissect_hello, [2] = dissect_auth, [3] = dissect_message,
    [4] = dissect_bye, [5] = dissect_busy,
    [6] = dissect_roster, [7] = dissect_joined, [8] = dissect_left, [9] = dissect_room_message,
}

-- One whole frame (header and body, all bytes present) at tvb(offset, total).
-- Returns the text for the Info column.
local function dissect_frame(tvb, offset, total, pinfo, tree)
    local version = tvb(offset + 4, 1):uint()
    local kind = tvb(offset + 5, 1):uint()
    local len = tvb(offset + 6, 4):uint()
    local tname = TYPE_NAMES[kind] or string.format("type %d", kind)

    local ft = tree:add(rchat, tvb(offset, total))
    ft:set_text(string.format("rchat %s, %d bytes", tname, total))
    ft:add(f.magic, tvb(offset, 4))
    local vitem = ft:add(f.version, tvb(offset + 4, 1))
    local titem = ft:add(f.type, tvb(offset + 5, 1))
    local litem = ft:add(f.length, tvb(offset + 6, 4))

    local summary = { tname }
    if version ~= VERSION then
        vitem:add_proto_expert_info(ex.bad_version)
        return table.concat(summary, " ")
    end
    local body = BODY[kind]
    if not body then
        titem:add_proto_expert_info(ex.bad_type)
        return table.concat(summary, " ")
    end
    if len > MAX_BODY[kind] then
        litem:add_proto_expert_info(ex.too_long,
            string.format("%d bytes, at most %d for %s", len, MAX_BODY[kind], tname))
    end
    local c = cursor(tvb, offset + HEADER_LEN, offset + total, ft)
    local ok, err = pcall(body, c, ft, summary)
    if not ok then
        ft:add_proto_expert_info(ex.internal, tostring(err))
    else
        c.finish()
    end
    return table.concat(summary, " ")
end

---------------------------------------------------------------------------------------------
-- Splitting the TCP stream into frames
---------------------------------------------------------------------------------------------

local function starts_like_rchat(tvb, offset, available)
    local n = math.min(4, available)
    return tvb(offset, n):string() == MAGIC:sub(1, n)
end

local function dissect_stream(tvb, pinfo, tree)
    local len = tvb:len()
    local offset = 0
    local infos = {}

    while offset < len do
        local available = len - offset
        if not starts_like_rchat(tvb, offset, available) then
            if offset == 0 then
                return 0 -- not rchat: let TCP hand the bytes to another dissector
            end
            local item = tree:add(rchat, tvb(offset, available))
            item:set_text(string.format("rchat: %d bytes that are not a frame", available))
            item:add_proto_expert_info(ex.not_rchat)
            offset = len
            break
        end
        if available < HEADER_LEN then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        local body_len = tvb(offset + 6, 4):uint()
        local kind = tvb(offset + 5, 1):uint()
        local limit = MAX_BODY[kind] or LARGEST_BODY
        local total = HEADER_LEN + body_len
        if available < total then
            if body_len <= limit then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = total - available
                break
            end
            -- A length no rchat peer accepts: show the header, do not wait for the body.
            local ft = tree:add(rchat, tvb(offset, available))
            ft:set_text(string.format("rchat frame with body length %d", body_len))
            ft:add(f.magic, tvb(offset, 4))
            ft:add(f.version, tvb(offset + 4, 1))
            ft:add(f.type, tvb(offset + 5, 1))
            ft:add(f.length, tvb(offset + 6, 4)):add_proto_expert_info(ex.too_long)
            infos[#infos + 1] = (TYPE_NAMES[kind] or "?") .. " (length too large)"
            offset = len
            break
        end
        infos[#infos + 1] = dissect_frame(tvb, offset, total, pinfo, tree)
        offset = offset + total
    end

    if #infos > 0 then
        local text = table.concat(infos, ", ")
        -- TCP calls this function again for frames completed by the same packet: add to
        -- what the earlier call wrote instead of replacing it.
        if tostring(pinfo.cols.protocol) == "RCHAT" then
            pinfo.cols.info:append(", " .. text)
        else
            pinfo.cols.protocol = "RCHAT"
            pinfo.cols.info:set(text)
        end
    end
    -- Having asked TCP for more bytes, claim the whole segment (returning 0 would mean
    -- "not rchat" and make TCP drop the request).
    return len
end

function rchat.dissector(tvb, pinfo, tree)
    local ok, result = pcall(dissect_stream, tvb, pinfo, tree)
    if ok then
        return result
    end
    local item = tree:add(rchat, tvb())
    item:add_proto_expert_info(ex.internal, tostring(result))
    return tvb:len()
end

-- Heuristic for other ports: "RCHT", version 1 and a known type at the start of the data.
local function heuristic(tvb, pinfo, tree)
    if tvb:len() < 6 then return false end
    if tvb(0, 4):string() ~= MAGIC then return false end
    if tvb(4, 1):uint() ~= VERSION then return false end
    if TYPE_NAMES[tvb(5, 1):uint()] == nil then return false end
    -- Later segments of this connection (including those in the middle of a frame) go to
    -- rchat directly.
    pinfo.conversation = rchat
    rchat.dissector(tvb, pinfo, tree)
    return true
end

DissectorTable.get("tcp.port"):add(DEFAULT_PORT, rchat)
rchat:register_heuristic("tcp", heuristic)
