pub mod cost;
pub mod profiles;
