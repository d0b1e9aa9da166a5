//! The internet setting's DHT, on loopback with real sockets: two members
//! that know nothing of each other's addresses find them through a relay's
//! Kademlia node. The relay refuses to carry their data (a circuit may
//! hold a few bytes only, less than a Noise handshake), so what connects
//! them is the DHT: its lookups find the other's address and dial it.
//! (Without Kademlia this test times out.)

#![cfg(feature = "net")]

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;
use vellum_journal::{DeviceId, VaultId};
use vellum_replicator::net::relay::{Relay, RelayConfig, RelayEvent};
use vellum_replicator::net::{self, Config, Internet, Multiaddr, NetEvent};

fn device(seed: [u8; 32]) -> DeviceId {
    vellum_journal::keys::device_id(&vellum_journal::keys::SigningKey::from_bytes(&seed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_find_each_others_addresses_in_the_dht() {
    let relay = Relay::start(
        RelayConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            circuit_bytes: 16,
            ..RelayConfig::default()
        },
        [9; 32],
    )
    .unwrap();
    let (addr_tx, mut addr_rx) = mpsc::unbounded_channel();
    tokio::spawn(relay.run(move |ev| {
        if let RelayEvent::Address(a) = ev {
            let _ = addr_tx.send(a);
        }
    }));
    let relay_addr: Multiaddr = tokio::time::timeout(Duration::from_secs(10), addr_rx.recv())
        .await
        .expect("the relay listens")
        .unwrap();

    let vault = VaultId([7; 16]);
    let seeds = [[1u8; 32], [2u8; 32]];
    let mut nodes = Vec::new();
    let mut events = Vec::new();
    for seed in seeds {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = net::start(
            Config {
                vault,
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                mdns: false,
                internet: Some(Internet {
                    relays: vec![relay_addr.clone()],
                }),
            },
            seed,
            Box::new(move |ev| {
                let _ = tx.send(ev);
            }),
        )
        .unwrap();
        nodes.push(node);
        events.push(rx);
    }
    // Each knows the other is a member, and no address of it.
    let ids: Vec<DeviceId> = seeds.iter().map(|s| device(*s)).collect();
    nodes[0].set_members(BTreeSet::from([ids[1]]));
    nodes[1].set_members(BTreeSet::from([ids[0]]));

    let mut a = events.remove(0);
    let connected = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            match a.recv().await {
                Some(NetEvent::Connected { peer, addr }) if peer == ids[1] => {
                    if !net::is_relayed(&addr) {
                        return addr;
                    }
                }
                Some(_) => {}
                None => panic!("the node stopped"),
            }
        }
    })
    .await
    .expect("a reaches b directly, at an address only the DHT knew");
    assert!(net::is_loopback(&connected), "{connected}");
    for n in &nodes {
        n.shutdown();
    }
}
