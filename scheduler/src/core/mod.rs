//! The scheduler's model of the cluster: regions, the region tree, stores.
//!
//! Plain data structures with no locking or IO; [`crate::cluster`] owns them.

pub mod region;
pub mod region_tree;
pub mod store;

pub use region::RegionInfo;
pub use region_tree::{Change, RegionTree, StoreRegionStats};
pub use store::StoreInfo;
