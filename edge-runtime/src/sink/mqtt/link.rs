//! The connection to the broker: rumqttc's event loop on a thread of its own, reconnecting
//! with back-off, announcing the device (availability, discovery, retained state, events held
//! back while offline, the count of lost messages) each time the broker accepts it.
//!
//! The frame loop never waits for it: [`Link`] holds what the two sides share, and the sink
//! only ever calls `try_publish` on a bounded request channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{Client, Connection, Event, Packet, QoS};

use super::messages::{self, HA_BIRTH, ONLINE, Topics};
use crate::clock::SharedClock;

/// Events kept while the broker is unreachable (the oldest are dropped and counted as lost).
pub const HELD_EVENTS: usize = 32;

/// What the sink and the connection thread share.
#[derive(Debug, Default)]
pub struct Link {
    connected: AtomicBool,
    stop: AtomicBool,
    lost_unreported: AtomicU64,
    lost_total: AtomicU64,
    published: AtomicU64,
    reconnects: AtomicU64,
    last_state: Mutex<Option<String>>,
    held: Mutex<VecDeque<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A snapshot of the link for status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkStats {
    /// Whether the broker accepted the connection and it has not failed since.
    pub connected: bool,
    /// Messages dropped since start (broker away or queue full).
    pub lost: u64,
    /// Messages handed to the client.
    pub published: u64,
    /// Connections the broker accepted (1 after the first).
    pub connections: u64,
}

impl Link {
    /// Whether the broker is connected now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Counts a message that could not be sent.
    pub fn lose(&self) {
        self.lost_unreported.fetch_add(1, Ordering::Relaxed);
        self.lost_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message handed to the client.
    pub fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers the latest retained state, to be re-sent on reconnection.
    pub fn set_state(&self, payload: String) {
        *lock(&self.last_state) = Some(payload);
    }

    /// Keeps an event for when the broker is back; the oldest is lost when full.
    pub fn hold(&self, payload: String) {
        let mut held = lock(&self.held);
        if held.len() >= HELD_EVENTS {
            held.pop_front();
            self.lose();
        }
        held.push_back(payload);
    }

    /// Asks the connection thread to end.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            connected: self.connected(),
            lost: self.lost_total.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            connections: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// How the connection thread announces the device.
#[derive(Debug, Clone)]
pub struct Announce {
    /// The device's topics.
    pub topics: Topics,
    /// Version in the discovery configs.
    pub sw_version: String,
    /// First wait after a failed connection.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

fn send(client: &Client, link: &Link, topic: String, retain: bool, payload: String) {
    match client.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
        Ok(()) => link.published(),
        Err(_) => link.lose(),
    }
}

/// Publishes availability, discovery configs and the retained state (on every connection and
/// when Home Assistant comes online).
fn announce(client: &Client, link: &Link, a: &Announce) {
    send(
        client,
        link,
        a.topics.availability(),
        true,
        ONLINE.to_string(),
    );
    for (topic, payload) in a.topics.discovery_configs(&a.sw_version) {
        send(client, link, topic, true, payload);
    }
    let state = lock(&link.last_state).clone();
    if let Some(state) = state {
        send(client, link, a.topics.state(), true, state);
    }
}

/// After a (re)connection: subscribe to Home Assistant's status, announce, send the events
/// held back and report how many messages were lost.
fn on_connected(client: &Client, link: &Link, a: &Announce) {
    if let Some(ha) = a.topics.ha_status()
        && client.try_subscribe(ha, QoS::AtLeastOnce).is_err()
    {
        tracing::warn!("MQTT: cannot subscribe to Home Assistant's status (queue full)");
    }
    announce(client, link, a);
    let held: Vec<String> = lock(&link.held).drain(..).collect();
    for payload in held {
        send(client, link, a.topics.status(), false, payload);
    }
    let lost = link.lost_unreported.swap(0, Ordering::AcqRel);
    if lost > 0 {
        let total = link.lost_total.load(Ordering::Relaxed);
        let text = format!(
            "{lost} MQTT messages lost while the broker was unreachable or slow ({total} since start)"
        );
        tracing::warn!("{text}");
        send(
            client,
            link,
            a.topics.status(),
            false,
            messages::status_payload(
                0,
                emotion_shared::protocol::Level::Warning,
                "mqtt_lost",
                &text,
            )
            .to_string(),
        );
    }
    link.connected.store(true, Ordering::Release);
    link.reconnects.fetch_add(1, Ordering::Relaxed);
}

/// Drives the connection until the link is stopped or the client is gone.
pub fn run(
    client: Client,
    mut connection: Connection,
    link: Arc<Link>,
    a: Announce,
    clock: SharedClock,
) {
    let mut backoff = a.backoff_min;
    let ha_status = a.topics.ha_status();
    loop {
        let event = match connection.recv() {
            Ok(event) => event,
            // Every client handle is gone.
            Err(_) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("MQTT: connected to the broker");
                backoff = a.backoff_min;
                on_connected(&client, &link, &a);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if ha_status.as_deref() == Some(p.topic.as_str()) && p.payload == HA_BIRTH {
                    tracing::info!("MQTT: Home Assistant came online; announcing again");
                    announce(&client, &link, &a);
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                link.connected.store(false, Ordering::Release);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                let was = link.connected.swap(false, Ordering::AcqRel);
                if link.stopping() {
                    break;
                }
                if was {
                    tracing::warn!("MQTT: lost the broker ({e}); reconnecting");
                } else {
                    tracing::debug!("MQTT: cannot connect ({e}); next try in {backoff:?}");
                }
                let until = clock.now() + backoff;
                while clock.now() < until && !link.stopping() {
                    clock.sleep(Duration::from_millis(100).min(until - clock.now()));
                }
                if link.stopping() {
                    break;
                }
                backoff = (backoff * 2).min(a.backoff_max);
            }
        }
    }
}
