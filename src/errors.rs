//! Shared error plumbing: `From` impls that box lower-level errors into an enum's variants, so
//! errors passed up through the training and search loops keep every `Result` small.

/// `boxed_from!(Enum; Variant: Type, ...)` implements `From<Type> for Enum` as
/// `Enum::Variant(Box::new(e))`.
macro_rules! boxed_from {
    ($enum:ident; $($variant:ident: $ty:ty),* $(,)?) => {
        $(impl From<$ty> for $enum {
            fn from(e: $ty) -> Self {
                $enum::$variant(Box::new(e))
            }
        })*
    };
}

pub(crate) use boxed_from;
