//! A minimal raw-API client: put a key, read it back, scan, delete.
//!
//! ```text
//! tinykv-server --standalone &          # serves 127.0.0.1:20160 from ./tinykv-data
//! cargo run -p kvserver --example raw_client -- 127.0.0.1:20160
//! ```

use proto::kvrpcpb::{RawDeleteRequest, RawGetRequest, RawPutRequest, RawScanRequest};
use proto::tikvpb::tikv_client::TikvClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:20160".into());
    let mut client = TikvClient::connect(format!("http://{addr}")).await?;

    let put = client
        .raw_put(RawPutRequest {
            key: b"hello".to_vec(),
            value: b"world".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    // Raw responses report failures in `error` (and routing problems in `region_error`).
    if !put.error.is_empty() {
        return Err(format!("put failed: {}", put.error).into());
    }

    let got = client
        .raw_get(RawGetRequest {
            key: b"hello".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    if got.not_found {
        println!("hello is not set");
    } else {
        println!("hello = {}", String::from_utf8_lossy(&got.value));
    }

    let scanned = client
        .raw_scan(RawScanRequest {
            start_key: b"h".to_vec(),
            end_key: b"i".to_vec(),
            limit: 10,
            ..Default::default()
        })
        .await?
        .into_inner();
    for kv in scanned.kvs {
        println!(
            "scan: {} = {}",
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value)
        );
    }

    let deleted = client
        .raw_delete(RawDeleteRequest {
            key: b"hello".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    if !deleted.error.is_empty() {
        return Err(format!("delete failed: {}", deleted.error).into());
    }
    println!("deleted hello");
    Ok(())
}
