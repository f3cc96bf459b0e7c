//! Enums whose values are stored and sent as fixed strings (a run's status,
//! a key's scope, an event's type). Each declares its variants and their
//! strings once, with [`string_enum!`]; the strings, the parser and the list
//! of every value all come from that one declaration.

use std::fmt;

/// What [`string_enum!`] gives every such enum, for code that works on any
/// of them (such as a test that a wire mirror covers exactly its values).
pub trait StringEnum: Copy + Eq + fmt::Debug + fmt::Display + 'static {
    /// Every value, in declaration order.
    fn all() -> &'static [Self];

    /// The value's string.
    fn as_str(self) -> &'static str;

    /// The value whose string is `s`, if any.
    fn parse(s: &str) -> Option<Self>;
}

/// Declares an enum whose values are fixed strings:
///
/// ```ignore
/// string_enum! {
///     /// Where a run is in its life.
///     #[derive(Hash)]
///     pub enum RunStatus {
///         Pending = "pending",
///         Running = "running",
///     }
/// }
/// ```
///
/// The enum derives `Debug, Clone, Copy, PartialEq, Eq` (more with its own
/// `#[derive]`) and gets `ALL` (every value, in order), `as_str`, `parse`
/// (`None` for an unknown string), `Display` (the string) and
/// [`StringEnum`].
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The value's string, as stored and sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// The value whose string is `s`; `None` for any other string.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::domain::enums::StringEnum for $name {
            fn all() -> &'static [Self] {
                &$name::ALL
            }

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn parse(s: &str) -> Option<Self> {
                $name::parse(s)
            }
        }
    };
}
pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use super::*;

    string_enum! {
        /// A test enum.
        enum Fruit {
            Apple = "apple",
            /// With a doc comment.
            BloodOrange = "blood_orange",
        }
    }

    #[test]
    fn strings_parse_back_to_their_values() {
        assert_eq!(Fruit::ALL, [Fruit::Apple, Fruit::BloodOrange]);
        for fruit in Fruit::ALL {
            assert_eq!(Fruit::parse(fruit.as_str()), Some(fruit));
            assert_eq!(fruit.to_string(), fruit.as_str());
            assert_eq!(<Fruit as StringEnum>::parse(fruit.as_str()), Some(fruit));
        }
        assert_eq!(Fruit::BloodOrange.as_str(), "blood_orange");
        assert_eq!(Fruit::parse("Apple"), None);
        assert_eq!(Fruit::parse(""), None);
        assert_eq!(<Fruit as StringEnum>::all().len(), 2);
    }
}
