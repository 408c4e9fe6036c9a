//! The block store's policy as pure decisions on plain data: the order data dirs are
//! tried in, the room a dir has, high/low watermark eviction, and which blocks to evict
//! (least recently used first, never the block just committed). No file system calls:
//! [`super::block_store`] measures the file systems and applies the decisions.

use crate::config::Medium;

/// The fixed limits the store applies to every dir.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Bytes kept free in each dir.
    pub reserved: u64,
    /// Used fraction above which a commit triggers eviction.
    pub high_watermark: f64,
    /// Used fraction that eviction brings a dir down to.
    pub low_watermark: f64,
}

impl Limits {
    /// The limits, when the watermarks satisfy `0 < low <= high <= 1`; otherwise what is
    /// wrong with them.
    pub fn new(reserved: u64, high_watermark: f64, low_watermark: f64) -> Result<Limits, String> {
        let (low, high) = (low_watermark, high_watermark);
        if !(low > 0.0 && low <= high && high <= 1.0) {
            return Err(format!(
                "watermarks low {low} and high {high} are not 0 < low <= high <= 1"
            ));
        }
        Ok(Limits {
            reserved,
            high_watermark,
            low_watermark,
        })
    }
}

/// The space accounting of one data dir.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Space {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Bytes of committed blocks.
    pub used: u64,
    /// Bytes reserved by writers that have not committed yet.
    pub in_flight: u64,
}

impl Space {
    /// Bytes a new block may take, given the file system's free space: what is left of
    /// the capacity after committed and in-flight blocks, at most the free space, minus
    /// the reserved bytes.
    pub fn room(&self, fs_free: u64, reserved: u64) -> u64 {
        self.capacity
            .saturating_sub(self.used.saturating_add(self.in_flight))
            .min(fs_free)
            .saturating_sub(reserved)
    }

    /// The room there would be if every committed block of this dir were evicted.
    pub fn room_if_emptied(&self, fs_free: u64, reserved: u64) -> u64 {
        self.capacity
            .saturating_sub(self.in_flight)
            .min(fs_free.saturating_add(self.used))
            .saturating_sub(reserved)
    }
}

/// Dir indexes in the order new blocks try them: by medium (Mem, Ssd, Hdd, Disk), then
/// config order.
pub fn tier_order(media: &[Medium]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..media.len()).collect();
    order.sort_by_key(|&i| media[i]);
    order
}

/// The dirs, in tier `order`, worth evicting from for a block of `needed` bytes: those
/// where evicting every committed block would make room. `fs_free` is each dir's file
/// system free space, by dir index.
pub fn eviction_candidates(
    order: &[usize],
    spaces: &[Space],
    fs_free: &[u64],
    reserved: u64,
    needed: u64,
) -> Vec<usize> {
    order
        .iter()
        .copied()
        .filter(|&i| spaces[i].room_if_emptied(fs_free[i], reserved) >= needed)
        .collect()
}

/// The blocks to evict from a dir, oldest first, until it has room for `needed` bytes,
/// and whether that makes room. `oldest_first` is the dir's committed blocks as
/// `(id, len)`, least recently used first; `fs_free` is the file system's free space
/// before evicting (evicted bytes come back to it).
pub fn victims_for_room(
    space: Space,
    fs_free: u64,
    reserved: u64,
    needed: u64,
    oldest_first: impl IntoIterator<Item = (u64, u64)>,
) -> (Vec<u64>, bool) {
    let mut space = space;
    let mut freed = 0u64;
    let mut victims = Vec::new();
    let mut oldest = oldest_first.into_iter();
    loop {
        if space.room(fs_free.saturating_add(freed), reserved) >= needed {
            return (victims, true);
        }
        match oldest.next() {
            Some((id, len)) => {
                victims.push(id);
                freed += len;
                space.used = space.used.saturating_sub(len);
            }
            None => return (victims, false),
        }
    }
}

/// After a commit to a dir: when it is above the high watermark, the blocks to evict,
/// oldest first, to bring it to or below the low watermark. Stops at `keep`, the block
/// just committed (the most recent, so it is only reached when nothing else is left).
pub fn victims_for_watermark(
    space: Space,
    limits: &Limits,
    oldest_first: impl IntoIterator<Item = (u64, u64)>,
    keep: u64,
) -> Vec<u64> {
    let capacity = space.capacity as f64;
    if space.used as f64 <= limits.high_watermark * capacity {
        return Vec::new();
    }
    let target = limits.low_watermark * capacity;
    let mut used = space.used;
    let mut victims = Vec::new();
    for (id, len) in oldest_first {
        if used as f64 <= target || id == keep {
            break;
        }
        victims.push(id);
        used = used.saturating_sub(len);
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(capacity: u64, used: u64, in_flight: u64) -> Space {
        Space {
            capacity,
            used,
            in_flight,
        }
    }

    fn limits(high: f64, low: f64) -> Limits {
        Limits::new(0, high, low).unwrap()
    }

    #[test]
    fn watermarks_must_be_ordered_ratios() {
        for (high, low, ok) in [
            (0.95, 0.8, true),
            (1.0, 1.0, true),
            (0.5, 0.5, true),
            (0.8, 0.95, false),
            (1.5, 0.8, false),
            (0.9, 0.0, false),
            (0.9, -0.1, false),
            (f64::NAN, 0.5, false),
        ] {
            assert_eq!(
                Limits::new(0, high, low).is_ok(),
                ok,
                "high {high} low {low}"
            );
        }
    }

    #[test]
    fn room_is_capacity_left_capped_by_the_file_system_minus_reserved() {
        // (capacity, used, in_flight, fs_free, reserved) -> (room, room_if_emptied)
        for ((c, u, f, free, r), (room, emptied)) in [
            ((100, 0, 0, 1000, 0), (100, 100)),
            ((100, 30, 20, 1000, 0), (50, 80)),
            ((100, 30, 20, 10, 0), (10, 40)),
            ((100, 30, 20, 1000, 15), (35, 65)),
            ((100, 100, 0, 1000, 0), (0, 100)),
            ((100, 90, 20, 1000, 0), (0, 80)),
            ((100, 0, 0, 1000, 200), (0, 0)),
            ((u64::MAX, u64::MAX, 1, u64::MAX, 0), (0, u64::MAX - 1)),
        ] {
            let s = space(c, u, f);
            assert_eq!(s.room(free, r), room, "{s:?} free {free} reserved {r}");
            assert_eq!(s.room_if_emptied(free, r), emptied, "{s:?} free {free}");
        }
    }

    #[test]
    fn tiers_go_fastest_medium_first_then_config_order() {
        use Medium::{Disk, Hdd, Mem, Ssd};
        for (media, order) in [
            (vec![Disk, Mem], vec![1, 0]),
            (vec![Hdd, Ssd, Mem, Disk], vec![2, 1, 0, 3]),
            (vec![Ssd, Disk, Ssd, Mem], vec![3, 0, 2, 1]),
            (vec![], vec![]),
        ] {
            assert_eq!(tier_order(&media), order, "{media:?}");
        }
    }

    #[test]
    fn only_dirs_that_can_make_room_are_evicted_from() {
        let spaces = [space(100, 90, 0), space(50, 50, 0), space(100, 0, 80)];
        let fs_free = [1000, 1000, 1000];
        assert_eq!(
            eviction_candidates(&[2, 0, 1], &spaces, &fs_free, 0, 60),
            [0]
        );
        assert_eq!(
            eviction_candidates(&[2, 0, 1], &spaces, &fs_free, 0, 20),
            [2, 0, 1]
        );
        assert!(eviction_candidates(&[0, 1, 2], &spaces, &fs_free, 0, 101).is_empty());
    }

    #[test]
    fn room_is_made_by_evicting_the_oldest_first() {
        let blocks = [(7, 30), (3, 30), (9, 30)];
        // (space, fs_free, needed) -> (victims, enough)
        for ((s, free, needed), (victims, enough)) in [
            ((space(100, 90, 0), 1000, 10), (vec![], true)),
            ((space(100, 90, 0), 1000, 11), (vec![7], true)),
            ((space(100, 90, 0), 1000, 70), (vec![7, 3], true)),
            ((space(100, 90, 0), 1000, 100), (vec![7, 3, 9], true)),
            ((space(100, 90, 0), 1000, 101), (vec![7, 3, 9], false)),
            // The file system is the limit: evicted bytes come back to it.
            ((space(100, 90, 0), 5, 40), (vec![7, 3], true)),
        ] {
            assert_eq!(
                victims_for_room(s, free, 0, needed, blocks),
                (victims, enough),
                "{s:?} free {free} needed {needed}"
            );
        }
    }

    #[test]
    fn watermark_eviction_goes_from_above_high_down_to_low() {
        let blocks = [(2, 10), (3, 10), (0, 10), (1, 10), (4, 10)];
        // (used, high, low) -> victims; capacity 50, block 4 just committed
        for ((used, high, low), victims) in [
            ((45, 0.9, 0.5), vec![]),
            ((50, 1.0, 1.0), vec![]),
            ((50, 0.9, 0.5), vec![2, 3, 0]),
            ((50, 0.9, 0.8), vec![2]),
            ((50, 0.9, 0.1), vec![2, 3, 0, 1]),
        ] {
            assert_eq!(
                victims_for_watermark(space(50, used, 0), &limits(high, low), blocks, 4),
                victims,
                "used {used} high {high} low {low}"
            );
        }
    }

    #[test]
    fn watermark_eviction_never_takes_the_block_just_committed() {
        let lone = [(1, 960)];
        let s = space(1000, 960, 0);
        assert!(victims_for_watermark(s, &limits(0.9, 0.5), lone, 1).is_empty());
        // It stops there even if older blocks came after it in the order given.
        let odd = [(5, 500), (1, 460)];
        assert!(victims_for_watermark(s, &limits(0.9, 0.1), odd, 5).is_empty());
    }
}
