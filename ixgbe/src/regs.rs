//! Register offsets and bits, each with the datasheet section that defines it.
//!
//! Sources: Intel 82599 10 GbE Controller Datasheet (331520), §8.2.3 "Device Registers — PF";
//! Intel 82576 GbE Controller Datasheet, §8 "Programming Interface". Both parts use the same
//! per-queue register block layout (stride 0x40) at different bases, and the same RSS block
//! (MRQC/RETA/RSSRK) at the same offsets.

/// 82599 registers (datasheet 331520, §8.2.3).
pub mod x82599 {
    /// §8.2.3.1.1 Device Control Register (CTRL).
    pub const CTRL: u64 = 0x00000;
    /// CTRL bit 2: PCIe master disable (§5.2.5.3.2 master disable).
    pub const CTRL_MASTER_DISABLE: u32 = 1 << 2;
    /// CTRL bit 3: link reset (LRST).
    pub const CTRL_LRST: u32 = 1 << 3;
    /// CTRL bit 26: device reset (RST), self-clearing.
    pub const CTRL_RST: u32 = 1 << 26;
    /// §8.2.3.1.2 Device Status Register (STATUS).
    pub const STATUS: u64 = 0x00008;
    /// STATUS bit 19: PCIe master enable status (GIO).
    pub const STATUS_MASTER_ENABLE: u32 = 1 << 19;
    /// §8.2.3.1.3 Extended Device Control Register (CTRL_EXT).
    pub const CTRL_EXT: u64 = 0x00018;
    /// CTRL_EXT bit 16: no-snoop disable (NS_DIS).
    pub const CTRL_EXT_NS_DIS: u32 = 1 << 16;
    /// CTRL_EXT bit 28: driver loaded (DRV_LOAD).
    pub const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;
    /// §8.2.3.2.1 EEPROM/Flash Control Register (EEC).
    pub const EEC: u64 = 0x10010;
    /// EEC bit 9: EEPROM auto-read done (ARD).
    pub const EEC_ARD: u32 = 1 << 9;
    /// §8.2.3.5.4 Extended Interrupt Mask Clear Register (EIMC).
    pub const EIMC: u64 = 0x00888;
    /// EIMC: every cause bit.
    pub const EIMC_ALL: u32 = 0x7fff_ffff;
    /// §8.2.3.8.8 Receive DMA Control Register (RDRXCTL).
    pub const RDRXCTL: u64 = 0x02f00;
    /// RDRXCTL bit 1: strip the Ethernet CRC (CRCSTRIP; must match HLREG0.RXCRCSTRP).
    pub const RDRXCTL_CRCSTRIP: u32 = 1 << 1;
    /// RDRXCTL bit 3: DMA initialization done (DMAIDONE).
    pub const RDRXCTL_DMAIDONE: u32 = 1 << 3;
    /// RDRXCTL bit 25: RSCACKC (the datasheet says: must be set to 1).
    pub const RDRXCTL_RSCACKC: u32 = 1 << 25;
    /// RDRXCTL bit 26: FCOE_WRFIX (the datasheet says: must be set to 1).
    pub const RDRXCTL_FCOE_WRFIX: u32 = 1 << 26;
    /// §8.2.3.8.10 Receive Control Register (RXCTRL).
    pub const RXCTRL: u64 = 0x03000;
    /// RXCTRL bit 0: receive enable (RXEN).
    pub const RXCTRL_RXEN: u32 = 1 << 0;
    /// §8.2.3.7.1 Filter Control Register (FCTRL).
    pub const FCTRL: u64 = 0x05080;
    /// FCTRL bit 8: multicast promiscuous (MPE).
    pub const FCTRL_MPE: u32 = 1 << 8;
    /// FCTRL bit 9: unicast promiscuous (UPE).
    pub const FCTRL_UPE: u32 = 1 << 9;
    /// FCTRL bit 10: broadcast accept (BAM).
    pub const FCTRL_BAM: u32 = 1 << 10;
    /// §8.2.3.22.8 MAC Core Control 0 Register (HLREG0).
    pub const HLREG0: u64 = 0x04240;
    /// HLREG0 bit 0: append CRC on transmit (TXCRCEN).
    pub const HLREG0_TXCRCEN: u32 = 1 << 0;
    /// HLREG0 bit 1: strip CRC on receive (RXCRCSTRP).
    pub const HLREG0_RXCRCSTRP: u32 = 1 << 1;
    /// HLREG0 bit 10: pad short frames on transmit (TXPADEN).
    pub const HLREG0_TXPADEN: u32 = 1 << 10;
    /// HLREG0 bit 15: MAC loopback (LPBK), for the self-test.
    pub const HLREG0_LPBK: u32 = 1 << 15;
    /// §8.2.3.22.19 Auto-Negotiation Control Register (AUTOC).
    pub const AUTOC: u64 = 0x042a0;
    /// AUTOC bit 0: force link up (FLU), used for MAC loopback.
    pub const AUTOC_FLU: u32 = 1 << 0;
    /// AUTOC bit 12: restart auto-negotiation (Restart_AN).
    pub const AUTOC_AN_RESTART: u32 = 1 << 12;
    /// AUTOC bits 15:13: link mode select (LMS).
    pub const AUTOC_LMS_MASK: u32 = 7 << 13;
    /// AUTOC.LMS = 011b: 10 GbE serial link (SFI), no backplane auto-negotiation.
    pub const AUTOC_LMS_10G_SERIAL: u32 = 3 << 13;
    /// §8.2.3.22.20 Link Status Register (LINKS).
    pub const LINKS: u64 = 0x042a4;
    /// LINKS bit 30: link up.
    pub const LINKS_UP: u32 = 1 << 30;
    /// LINKS bits 29:28: speed (01b 100 Mb/s, 10b 1 Gb/s, 11b 10 Gb/s).
    pub const LINKS_SPEED_SHIFT: u32 = 28;
    /// §8.2.3.7.5 Receive Checksum Control (RXCSUM).
    pub const RXCSUM: u64 = 0x05000;
    /// §8.2.3.7.8 Receive Address Low (RAL\[0\]).
    pub const RAL0: u64 = 0x0a200;
    /// §8.2.3.7.9 Receive Address High (RAH\[0\]).
    pub const RAH0: u64 = 0x0a204;
    /// §8.2.3.9.10 DMA Tx Control (DMATXCTL).
    pub const DMATXCTL: u64 = 0x04a80;
    /// DMATXCTL bit 0: transmit enable (TE).
    pub const DMATXCTL_TE: u32 = 1 << 0;
    /// §8.2.3.10.2 DCB Transmit Descriptor Plane Control and Status (RTTDCS).
    pub const RTTDCS: u64 = 0x04900;
    /// RTTDCS bit 6: descriptor plane arbiter disable (ARBDIS), set while MTQC is changed.
    pub const RTTDCS_ARBDIS: u32 = 1 << 6;
    /// §8.2.3.9.15 Multiple Transmit Queues Command Register (MTQC).
    pub const MTQC: u64 = 0x08120;
    /// §8.2.3.8.1 RDBAL\[n\]: receive queue block base for n < 64 (stride 0x40).
    pub const RX_QUEUE_BASE: u64 = 0x01000;
    /// §8.2.3.9.5 TDBAL\[n\]: transmit queue block base (stride 0x40).
    pub const TX_QUEUE_BASE: u64 = 0x06000;
    /// §8.2.3.8.7 SRRCTL\[n\] offset inside the receive queue block (0x01014 + 0x40·n).
    pub const SRRCTL_IN_BLOCK: u64 = 0x14;
    /// SRRCTL bit 28: drop when no descriptor is available (DROP_EN).
    pub const SRRCTL_DROP_EN: u32 = 1 << 28;
    /// §8.2.3.23.x statistics, clear on read: Good Packets Received Count (GPRC).
    pub const GPRC: u64 = 0x04074;
    /// §8.2.3.23 Good Packets Transmitted Count (GPTC).
    pub const GPTC: u64 = 0x04080;
    /// §8.2.3.23 Good Octets Received Count low (GORCL; GORCH follows).
    pub const GORCL: u64 = 0x04088;
    /// §8.2.3.23 Good Octets Transmitted Count low (GOTCL; GOTCH follows).
    pub const GOTCL: u64 = 0x04090;
    /// §8.2.3.23 Missed Packets Count, packet buffer 0 (MPC\[0\]).
    pub const MPC0: u64 = 0x03fa0;
    /// §8.2.3.23 CRC Error Count (CRCERRS).
    pub const CRCERRS: u64 = 0x04000;
}

/// 82576 registers (82576 datasheet, §8).
pub mod x82576 {
    /// §8.2.1 Device Control Register (CTRL).
    pub const CTRL: u64 = 0x0000;
    /// CTRL bit 2: GIO master disable.
    pub const CTRL_MASTER_DISABLE: u32 = 1 << 2;
    /// CTRL bit 3: link reset (LRST); set after reset, must be cleared for the link to come up.
    pub const CTRL_LRST: u32 = 1 << 3;
    /// CTRL bit 6: set link up (SLU).
    pub const CTRL_SLU: u32 = 1 << 6;
    /// CTRL bit 26: device reset (RST), self-clearing.
    pub const CTRL_RST: u32 = 1 << 26;
    /// §8.2.2 Device Status Register (STATUS).
    pub const STATUS: u64 = 0x0008;
    /// STATUS bit 1: link up (LU).
    pub const STATUS_LU: u32 = 1 << 1;
    /// STATUS bits 7:6: speed (00b 10, 01b 100, 1xb 1000 Mb/s).
    pub const STATUS_SPEED_SHIFT: u32 = 6;
    /// STATUS bit 19: GIO master enable status.
    pub const STATUS_MASTER_ENABLE: u32 = 1 << 19;
    /// §8.2.3 EEPROM/Flash Control Register (EEC).
    pub const EEC: u64 = 0x0010;
    /// EEC bit 9: EEPROM auto-read done (Auto_RD).
    pub const EEC_AUTO_RD: u32 = 1 << 9;
    /// §8.2.4 MDI Control Register (MDIC).
    pub const MDIC: u64 = 0x0020;
    /// MDIC bits 20:16: PHY register address.
    pub const MDIC_REG_SHIFT: u32 = 16;
    /// MDIC bits 25:21: PHY address (the internal PHY is 1).
    pub const MDIC_PHY_SHIFT: u32 = 21;
    /// MDIC bits 27:26 = 01b: write.
    pub const MDIC_OP_WRITE: u32 = 1 << 26;
    /// MDIC bits 27:26 = 10b: read.
    pub const MDIC_OP_READ: u32 = 2 << 26;
    /// MDIC bit 28: ready (the MDI transaction completed).
    pub const MDIC_READY: u32 = 1 << 28;
    /// MDIC bit 30: error.
    pub const MDIC_ERROR: u32 = 1 << 30;
    /// PHY register 0 (IEEE 802.3 clause 22 control): auto-negotiation enable + restart, full
    /// duplex, 1000 Mb/s (0x1340).
    pub const PHY_CTRL_AN_RESTART: u16 = 0x1340;
    /// §8.2.5 Extended Device Control Register (CTRL_EXT).
    pub const CTRL_EXT: u64 = 0x0018;
    /// CTRL_EXT bit 28: driver loaded (DRV_LOAD).
    pub const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;
    /// §8.8.x Interrupt Mask Clear (IMC).
    pub const IMC: u64 = 0x00d8;
    /// §8.8.x Extended Interrupt Mask Clear (EIMC).
    pub const EIMC: u64 = 0x1528;
    /// §8.10.1 Receive Control Register (RCTL).
    pub const RCTL: u64 = 0x0100;
    /// RCTL bit 1: receiver enable (EN).
    pub const RCTL_EN: u32 = 1 << 1;
    /// RCTL bit 3: unicast promiscuous (UPE).
    pub const RCTL_UPE: u32 = 1 << 3;
    /// RCTL bit 4: multicast promiscuous (MPE).
    pub const RCTL_MPE: u32 = 1 << 4;
    /// RCTL bit 15: broadcast accept (BAM).
    pub const RCTL_BAM: u32 = 1 << 15;
    /// RCTL bit 26: strip Ethernet CRC (SECRC).
    pub const RCTL_SECRC: u32 = 1 << 26;
    /// §8.12.1 Transmit Control Register (TCTL).
    pub const TCTL: u64 = 0x0400;
    /// TCTL bit 1: transmit enable (EN).
    pub const TCTL_EN: u32 = 1 << 1;
    /// TCTL bit 3: pad short packets (PSP).
    pub const TCTL_PSP: u32 = 1 << 3;
    /// §8.10.x Receive Checksum Control (RXCSUM).
    pub const RXCSUM: u64 = 0x5000;
    /// RXCSUM bit 8: IP checksum offload (IPOFLD).
    pub const RXCSUM_IPOFLD: u32 = 1 << 8;
    /// RXCSUM bit 9: TCP/UDP checksum offload (TUOFLD).
    pub const RXCSUM_TUOFLD: u32 = 1 << 9;
    /// §8.10.x Receive Address Low (RAL\[0\]).
    pub const RAL0: u64 = 0x5400;
    /// §8.10.x Receive Address High (RAH\[0\]).
    pub const RAH0: u64 = 0x5404;
    /// §8.10.x RDBAL\[n\]: receive queue block base (stride 0x40, n < 16).
    pub const RX_QUEUE_BASE: u64 = 0xc000;
    /// §8.12.x TDBAL\[n\]: transmit queue block base (stride 0x40).
    pub const TX_QUEUE_BASE: u64 = 0xe000;
    /// §8.10.x SRRCTL\[n\] offset inside the receive queue block (0xC00C + 0x40·n).
    pub const SRRCTL_IN_BLOCK: u64 = 0x0c;
    /// SRRCTL bit 31: drop when no descriptor is available (Drop_En).
    pub const SRRCTL_DROP_EN: u32 = 1 << 31;
    /// §8.19 statistics, clear on read: Good Packets Received Count (GPRC).
    pub const GPRC: u64 = 0x4074;
    /// Good Packets Transmitted Count (GPTC).
    pub const GPTC: u64 = 0x4080;
    /// Good Octets Received Count low (GORCL).
    pub const GORCL: u64 = 0x4088;
    /// Good Octets Transmitted Count low (GOTCL).
    pub const GOTCL: u64 = 0x4090;
    /// Missed Packets Count (MPC).
    pub const MPC: u64 = 0x4010;
    /// CRC Error Count (CRCERRS).
    pub const CRCERRS: u64 = 0x4000;
}

/// Registers shared by both parts at the same offsets.
pub mod common {
    /// Offsets inside a per-queue block (82599 §8.2.3.8.1–.6 / §8.2.3.9.5–.10; 82576 §8.10 /
    /// §8.12): descriptor base low.
    pub const DBAL: u64 = 0x00;
    /// Descriptor base high.
    pub const DBAH: u64 = 0x04;
    /// Descriptor ring length in bytes (a multiple of 128).
    pub const DLEN: u64 = 0x08;
    /// Head.
    pub const DH: u64 = 0x10;
    /// Tail.
    pub const DT: u64 = 0x18;
    /// RXDCTL / TXDCTL.
    pub const DCTL: u64 = 0x28;
    /// Stride between queue blocks.
    pub const QUEUE_STRIDE: u64 = 0x40;
    /// RXDCTL/TXDCTL bit 25: queue enable.
    pub const DCTL_ENABLE: u32 = 1 << 25;
    /// SRRCTL bits 27:25 = 001b: advanced descriptors, one buffer (82599 §8.2.3.8.7; 82576
    /// SRRCTL.DESCTYPE).
    pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 1 << 25;
    /// RXCSUM bit 12: IP payload checksum enable (IPPCSE).
    pub const RXCSUM_IPPCSE: u32 = 1 << 12;
    /// RXCSUM bit 13: packet checksum disable (PCSD): the write-back carries the RSS hash
    /// instead of the fragment checksum (required for RSS).
    pub const RXCSUM_PCSD: u32 = 1 << 13;
    /// 82599 §8.2.3.7.12 / 82576 §8.10.x Multiple Receive Queues Command (MRQC).
    pub const MRQC: u64 = 0x5818;
    /// MRQC hash-field enable bits (bit 16 TCP/IPv4, 17 IPv4, 20 IPv6, 21 TCP/IPv6, 22 UDP/IPv4).
    pub const MRQC_FIELDS: u32 = (1 << 16) | (1 << 17) | (1 << 20) | (1 << 21) | (1 << 22);
    /// 82599 §8.2.3.7.13 / 82576 Redirection Table RETA\[0..32\] (4 entries per register).
    pub const RETA: u64 = 0x5c00;
    /// Number of RETA registers.
    pub const RETA_REGS: u64 = 32;
    /// 82599 §8.2.3.7.14 / 82576 RSS Random Key RSSRK\[0..10\].
    pub const RSSRK: u64 = 0x5c80;
    /// Number of RSSRK registers.
    pub const RSSRK_REGS: u64 = 10;
    /// RAH bit 31: address valid (AV).
    pub const RAH_AV: u32 = 1 << 31;
}
