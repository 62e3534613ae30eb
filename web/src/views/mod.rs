//! The panels of the page, one module each. A view owns its elements (found once by id in
//! the skeleton, `web/index.html`) and knows how to show its part; it calls back into the
//! app only through the handlers it is given.

pub mod chaos;
pub mod counters;
pub mod feed;
pub mod rtt;
pub mod server;
pub mod settings;
pub mod status;
pub mod timeline;

/// Every panel.
pub struct Views {
    /// The state pill in the header and the connection card.
    pub status: status::StatusView,
    /// The RTT sparkline and percentiles.
    pub rtt: rtt::RttView,
    /// The client's counters.
    pub counters: counters::CountersView,
    /// The event feed and the publish box.
    pub feed: feed::FeedView,
    /// The connection events.
    pub timeline: timeline::TimelineView,
    /// The server's Stats.
    pub server: server::ServerView,
    /// The fault injection buttons.
    pub chaos: chaos::ChaosView,
    /// The editable client settings.
    pub settings: settings::SettingsView,
}

impl Views {
    /// Finds every panel's elements.
    pub fn find() -> Self {
        Views {
            status: status::StatusView::find(),
            rtt: rtt::RttView::find(),
            counters: counters::CountersView::find(),
            feed: feed::FeedView::find(),
            timeline: timeline::TimelineView::find(),
            server: server::ServerView::find(),
            chaos: chaos::ChaosView::find(),
            settings: settings::SettingsView::find(),
        }
    }
}
