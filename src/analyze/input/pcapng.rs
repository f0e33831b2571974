//! pcap Next Generation: sections (each with its byte order), interfaces (each with its link
//! type, snaplen, `if_tsresol` and `if_tsoffset`), and the Enhanced, Simple and obsolete
//! Packet Blocks; other blocks are skipped.
//!
//! Owns the checks of every block length (a multiple of four, at most [`MAX_RECORD`], the
//! trailing length equal to the leading one) and of every field against the block's bytes: a
//! damaged block stops reading there, a damaged interface description or a packet for an
//! undeclared interface is skipped with a note.

use std::io::{self, Read};

use super::{Kind, MAX_RECORD, OpenError, Pending, Reader, u16_at, u32_at, u64_at};

/// Timestamp units of a pcapng interface, as `if_tsresol` gives them.
#[derive(Debug, Clone, Copy)]
struct Resolution {
    /// Multiply by `mul` then divide by `div` to get nanoseconds.
    mul: u128,
    div: u128,
}

impl Resolution {
    const MICRO: Resolution = Resolution { mul: 1000, div: 1 };

    fn from_tsresol(v: u8) -> Option<Resolution> {
        let exp = u32::from(v & 0x7f);
        if v & 0x80 == 0 {
            if exp > 30 {
                return None;
            }
            if exp <= 9 {
                Some(Resolution { mul: 10u128.pow(9 - exp), div: 1 })
            } else {
                Some(Resolution { mul: 1, div: 10u128.pow(exp - 9) })
            }
        } else {
            if exp > 63 {
                return None;
            }
            Some(Resolution { mul: 1_000_000_000, div: 1u128 << exp })
        }
    }

    fn to_ns(self, units: u64, offset_s: i64) -> i64 {
        let ns = u128::from(units) * self.mul / self.div;
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        ns.saturating_add(offset_s.saturating_mul(1_000_000_000))
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Interface {
    link_type: u32,
    snaplen: u32,
    res: Resolution,
    offset_s: i64,
}

fn parse_idb(body: &[u8], be: bool) -> Option<Interface> {
    let link_type = u32::from(u16_at(body, 0, be)?);
    let snaplen = u32_at(body, 4, be)?;
    let mut iface = Interface { link_type, snaplen, res: Resolution::MICRO, offset_s: 0 };
    let mut at = 8;
    while let (Some(code), Some(len)) = (u16_at(body, at, be), u16_at(body, at + 2, be)) {
        let len = usize::from(len);
        let value = body.get(at + 4..at + 4 + len)?;
        match code {
            0 => break,
            9 => {
                if let Some(&v) = value.first() {
                    iface.res = Resolution::from_tsresol(v)?;
                }
            }
            14 => {
                if let Some(v) = u64_at(value, 0, be) {
                    iface.offset_s = v as i64;
                }
            }
            _ => {}
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    Some(iface)
}

impl<R: Read> Reader<R> {
    /// Read and check the first Section Header Block (the magic is already known to be
    /// pcapng's).
    pub(super) fn open_pcapng(&mut self) -> Result<(), OpenError> {
        // The first block must be a readable Section Header Block.
        self.win.fill(28)?;
        let head = self.win.available();
        if head.len() < 28 {
            return Err(OpenError::BadHeader(format!(
                "the pcapng section header is cut off after {} bytes",
                head.len()
            )));
        }
        let be = match head.get(8..12) {
            Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
            Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
            _ => {
                return Err(OpenError::BadHeader(
                    "the pcapng section header has no byte-order magic".into(),
                ));
            }
        };
        self.kind = Kind::Pcapng { be, interfaces: Vec::new() };
        Ok(())
    }

    pub(super) fn next_pcapng(&mut self) -> io::Result<Option<Pending>> {
        loop {
            if !self.win.fill(12)? {
                let left = self.win.available().len();
                if left > 0 {
                    self.halt(format!("the file ends inside a block header ({left} bytes)"));
                }
                return Ok(None);
            }
            let h = self.win.available();
            let Kind::Pcapng { be, .. } = self.kind else { return Ok(None) };
            let is_shb = h.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]);
            let be = if is_shb {
                match h.get(8..12) {
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                    _ => {
                        self.halt("a section header has no byte-order magic");
                        return Ok(None);
                    }
                }
            } else {
                be
            };
            let (Some(btype), Some(blen)) = (u32_at(h, 0, be), u32_at(h, 4, be)) else {
                return Ok(None);
            };
            let blen = blen as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD {
                self.halt(format!("a block claims an impossible length of {blen} bytes"));
                return Ok(None);
            }
            if !self.win.fill(blen)? {
                let left = self.win.available().len();
                self.halt(format!("the file ends inside a block ({left} of {blen} bytes)"));
                return Ok(None);
            }
            let block = self.win.available().get(..blen).unwrap_or(&[]);
            if u32_at(block, blen - 4, be) != Some(blen as u32) {
                self.halt("a block's trailing length does not match its header");
                return Ok(None);
            }
            let body = block.get(8..blen - 4).unwrap_or(&[]);
            match btype {
                0x0a0d_0d0a => {
                    // New section: new byte order, no interfaces.
                    self.kind = Kind::Pcapng { be, interfaces: Vec::new() };
                }
                1 => {
                    let iface = parse_idb(body, be);
                    match iface {
                        Some(i) => {
                            if !self.link_types.contains(&i.link_type) {
                                self.link_types.push(i.link_type);
                            }
                            if let Kind::Pcapng { interfaces, .. } = &mut self.kind
                                && interfaces.len() < 65_536
                            {
                                interfaces.push(i);
                            }
                        }
                        None => self.notes.push(format!(
                            "skipped a damaged interface description at byte {}",
                            self.win.offset
                        )),
                    }
                }
                6 | 2 => {
                    // Enhanced Packet Block (6) or the obsolete Packet Block (2).
                    let fields = if btype == 6 {
                        (u32_at(body, 0, be), u32_at(body, 4, be), u32_at(body, 8, be))
                    } else {
                        (
                            u16_at(body, 0, be).map(u32::from),
                            u32_at(body, 4, be),
                            u32_at(body, 8, be),
                        )
                    };
                    let (Some(ifid), Some(hi), Some(lo)) = fields else {
                        self.halt("a packet block is too short for its fields");
                        return Ok(None);
                    };
                    let (Some(cap), Some(orig)) = (u32_at(body, 12, be), u32_at(body, 16, be))
                    else {
                        self.halt("a packet block is too short for its fields");
                        return Ok(None);
                    };
                    let cap = cap as usize;
                    if 20 + cap > body.len() {
                        self.halt(format!(
                            "a packet block claims {cap} captured bytes but holds fewer"
                        ));
                        return Ok(None);
                    }
                    let Some(iface) = self.interface(ifid) else {
                        let at = self.win.offset;
                        self.notes.push(format!(
                            "skipped a packet at byte {at} for undeclared interface {ifid}"
                        ));
                        self.win.consume(blen);
                        continue;
                    };
                    let units = (u64::from(hi) << 32) | u64::from(lo);
                    let ts = iface.res.to_ns(units, iface.offset_s);
                    return Ok(Some(Pending {
                        len: blen,
                        link_type: iface.link_type,
                        ts_ns: ts,
                        orig_len: orig,
                        data_at: 28,
                        data_len: cap,
                    }));
                }
                3 => {
                    // Simple Packet Block: interface 0, no timestamp.
                    let Some(orig) = u32_at(body, 0, be) else {
                        self.halt("a simple packet block is too short");
                        return Ok(None);
                    };
                    let Some(iface) = self.interface(0) else {
                        let at = self.win.offset;
                        self.notes.push(format!(
                            "skipped a simple packet at byte {at}: no interface declared"
                        ));
                        self.win.consume(blen);
                        continue;
                    };
                    let room = body.len() - 4;
                    let mut cap = (orig as usize).min(room);
                    if iface.snaplen > 0 {
                        cap = cap.min(iface.snaplen as usize);
                    }
                    return Ok(Some(Pending {
                        len: blen,
                        link_type: iface.link_type,
                        ts_ns: 0,
                        orig_len: orig,
                        data_at: 12,
                        data_len: cap,
                    }));
                }
                _ => {}
            }
            self.win.consume(blen);
        }
    }

    fn interface(&self, id: u32) -> Option<Interface> {
        match &self.kind {
            Kind::Pcapng { interfaces, .. } => interfaces.get(id as usize).copied(),
            Kind::Pcap { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsresol_units() {
        assert_eq!(Resolution::from_tsresol(6).unwrap().to_ns(5, 0), 5000);
        assert_eq!(Resolution::from_tsresol(9).unwrap().to_ns(5, 1), 1_000_000_005);
        assert_eq!(Resolution::from_tsresol(0x80 | 10).unwrap().to_ns(1024, 0), 1_000_000_000);
        assert!(Resolution::from_tsresol(0xff).is_none());
    }
}
