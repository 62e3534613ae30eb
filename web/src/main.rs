//! The dashboard page: Trunk builds this binary for wasm32 and loads it (see `web/index.html`).

fn main() {
    #[cfg(target_arch = "wasm32")]
    web::start();
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("the dashboard runs in a browser: build it with `trunk build --release`");
}
