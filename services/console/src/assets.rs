//! The front end, bundled at build time (`build.rs`) and embedded here.

pub const INDEX_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/web/index.html"));
pub const APP_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/web/dist/main.js"));
pub const APP_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/web/dist/main.css"));
