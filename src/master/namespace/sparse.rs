//! A field most inodes leave empty (a symlink's target, hard links, xattrs, a writer's
//! pending blocks), kept as one pointer: 8 bytes when empty instead of the 24 of a
//! `String`, `Vec` or `BTreeMap`, which is a few dozen megabytes across a million files.
//!
//! It reads and writes as the value it holds (`Deref`/`DerefMut`; an empty one reads as
//! the type's empty value) and serializes exactly as that value, so the stored and
//! replicated formats (JSON and bincode alike) do not change.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// A value that can be empty, with one empty value that lives for the whole program.
pub trait Emptiable: Default + 'static {
    /// The empty value, borrowed.
    fn empty() -> &'static Self;
    /// Whether this value is empty.
    fn is_void(&self) -> bool;
}

/// `Emptiable` for concrete types (a generic `static` is not possible).
macro_rules! emptiable {
    ($($t:ty),*) => {$(
        impl Emptiable for $t {
            fn empty() -> &'static Self {
                static EMPTY: $t = <$t>::new();
                &EMPTY
            }
            fn is_void(&self) -> bool {
                self.is_empty()
            }
        }
    )*};
}

emptiable!(
    String,
    Vec<(u64, String)>,
    Vec<(u64, u32)>,
    BTreeMap<String, Vec<u8>>
);

/// A value kept behind one pointer, or nothing when it is empty.
#[derive(Clone, Default)]
pub struct Sparse<T>(Option<Box<T>>);

impl<T: Emptiable> Sparse<T> {
    /// Gives back the room of an emptied value (after a mutable use left it empty).
    pub fn shrink(&mut self) {
        if self.0.as_deref().is_some_and(T::is_void) {
            self.0 = None;
        }
    }
}

impl<T: Emptiable> Sparse<T> {
    /// The value, moved out.
    pub fn into_inner(self) -> T {
        self.0.map(|b| *b).unwrap_or_default()
    }
}

impl<'a, T: Emptiable> IntoIterator for &'a Sparse<T>
where
    &'a T: IntoIterator,
{
    type Item = <&'a T as IntoIterator>::Item;
    type IntoIter = <&'a T as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (**self).into_iter()
    }
}

impl<T: Emptiable> From<T> for Sparse<T> {
    fn from(value: T) -> Self {
        if value.is_void() {
            Sparse(None)
        } else {
            Sparse(Some(Box::new(value)))
        }
    }
}

impl<T: Emptiable> Deref for Sparse<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self.0.as_deref() {
            Some(value) => value,
            None => T::empty(),
        }
    }
}

impl<T: Emptiable> DerefMut for Sparse<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<T: Emptiable + PartialEq> PartialEq for Sparse<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Emptiable + Eq> Eq for Sparse<T> {}

impl<T: Emptiable + fmt::Debug> fmt::Debug for Sparse<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: Emptiable + Serialize> Serialize for Sparse<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de, T: Emptiable + Deserialize<'de>> Deserialize<'de> for Sparse<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Sparse::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_take_one_pointer_and_read_as_empty() {
        assert_eq!(std::mem::size_of::<Sparse<String>>(), 8);
        let mut s: Sparse<String> = String::new().into();
        assert!(s.0.is_none());
        assert_eq!(s.as_str(), "");
        s.push_str("target");
        assert_eq!(s.as_str(), "target");
        s.clear();
        s.shrink();
        assert!(s.0.is_none());
    }

    #[test]
    fn serializes_as_the_value_it_holds() {
        let links: Sparse<Vec<(u64, String)>> = vec![(3, "b".to_string())].into();
        let plain = vec![(3u64, "b".to_string())];
        assert_eq!(
            serde_json::to_string(&links).unwrap(),
            serde_json::to_string(&plain).unwrap()
        );
        assert_eq!(
            bincode::serialize(&links).unwrap(),
            bincode::serialize(&plain).unwrap()
        );
        let back: Sparse<Vec<(u64, String)>> =
            serde_json::from_str(&serde_json::to_string(&plain).unwrap()).unwrap();
        assert_eq!(back, links);
        let none: Sparse<BTreeMap<String, Vec<u8>>> = serde_json::from_str("{}").unwrap();
        assert!(none.0.is_none());
        assert_eq!(none, Sparse::default());
    }

    #[test]
    fn an_inode_keeps_its_rare_fields_behind_pointers() {
        // 160 bytes on 64-bit targets; the four fields as plain String/Vec/BTreeMap
        // made it 224.
        let size = std::mem::size_of::<crate::master::namespace::Inode>();
        assert!(size <= 160, "Inode is {size} bytes");
    }
}
