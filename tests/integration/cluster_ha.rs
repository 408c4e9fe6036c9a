//! Three masters: a leader is elected, writes go through any master address, and losing
//! the leader leaves the cluster serving with every acknowledged file.

use crate::cluster::{pattern, wait_for, TestCluster};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_masters_survive_losing_the_leader() {
    let mut cluster = TestCluster::start(3, 1, |_| {}).await;
    let c = cluster.client();
    for i in 0..50 {
        c.write_file(&format!("/ha/f{i}"), &pattern(64 << 10, i))
            .await
            .unwrap();
    }
    let report = c.report().await.unwrap();
    assert_eq!(report.masters.len(), 3);
    let leader = report.leader_id as usize - 1;
    assert_eq!(
        report.masters.iter().filter(|m| m.role == "leader").count(),
        1
    );

    cluster.stop_master(leader).await;
    let c = cluster.client();
    wait_for("a new leader", Duration::from_secs(15), || {
        let c = c.clone();
        async move {
            c.report()
                .await
                .map(|r| r.leader_id != 0 && r.leader_id as usize - 1 != leader)
                .unwrap_or(false)
        }
    })
    .await;
    for i in 50..80 {
        c.write_file(&format!("/ha/f{i}"), &pattern(64 << 10, i))
            .await
            .unwrap();
    }
    assert_eq!(c.list("/ha").await.unwrap().len(), 80);
    for i in [0u64, 49, 79] {
        assert_eq!(
            c.read_file(&format!("/ha/f{i}")).await.unwrap(),
            pattern(64 << 10, i)
        );
    }
    // The old leader comes back as a follower and catches up.
    cluster.restart_master(leader).await;
    cluster.wait_ready().await;
    cluster.shutdown().await;
}
