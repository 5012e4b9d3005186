//! etcd-client glue: sending an [`Input`] with an `etcd_client::KvClient` and converting
//! the responses into [`Output`]s.

use crate::history::{CmpOp, Input, Kv, Output, Target, TxnResult};

/// Sends `input` with an etcd client (linearizable reads) and converts the response.
pub async fn execute(
    kv: &mut etcd_client::KvClient,
    input: &Input,
) -> Result<Output, etcd_client::Error> {
    Ok(match input {
        Input::Put { key, value } => {
            Output::from_put(&kv.put(key.clone(), value.clone(), None).await?)
        }
        Input::Get { key, prefix } => {
            Output::from_get(&kv.get(key.clone(), get_options(key, *prefix)).await?)
        }
        Input::Delete { key, prefix } => {
            Output::from_delete(&kv.delete(key.clone(), delete_options(key, *prefix)).await?)
        }
        Input::Txn { .. } => Output::from_txn(&kv.txn(to_etcd_txn(input)).await?),
    })
}

fn get_options(key: &[u8], prefix: bool) -> Option<etcd_client::GetOptions> {
    match (prefix, key.is_empty()) {
        (false, _) => None,
        (true, true) => Some(etcd_client::GetOptions::new().with_all_keys()),
        (true, false) => Some(etcd_client::GetOptions::new().with_prefix()),
    }
}

fn delete_options(key: &[u8], prefix: bool) -> Option<etcd_client::DeleteOptions> {
    match (prefix, key.is_empty()) {
        (false, _) => None,
        (true, true) => Some(etcd_client::DeleteOptions::new().with_all_keys()),
        (true, false) => Some(etcd_client::DeleteOptions::new().with_prefix()),
    }
}

/// The etcd-client txn for a [`Input::Txn`] (panics on another input).
pub fn to_etcd_txn(input: &Input) -> etcd_client::Txn {
    let Input::Txn {
        compares,
        success,
        failure,
    } = input
    else {
        panic!("to_etcd_txn: not a txn: {input}");
    };
    let ops = |v: &[Input]| -> Vec<etcd_client::TxnOp> {
        v.iter()
            .map(|op| match op {
                Input::Put { key, value } => {
                    etcd_client::TxnOp::put(key.clone(), value.clone(), None)
                }
                Input::Get { key, prefix } => {
                    etcd_client::TxnOp::get(key.clone(), get_options(key, *prefix))
                }
                Input::Delete { key, prefix } => {
                    etcd_client::TxnOp::delete(key.clone(), delete_options(key, *prefix))
                }
                Input::Txn { .. } => etcd_client::TxnOp::txn(to_etcd_txn(op)),
            })
            .collect()
    };
    let cmps: Vec<etcd_client::Compare> = compares
        .iter()
        .map(|c| {
            use etcd_client::CompareOp as E;
            let op = match c.op {
                CmpOp::Equal => E::Equal,
                CmpOp::NotEqual => E::NotEqual,
                CmpOp::Less => E::Less,
                CmpOp::Greater => E::Greater,
            };
            let k = c.key.clone();
            match &c.target {
                Target::Value(v) => etcd_client::Compare::value(k, op, v.clone()),
                Target::Version(n) => etcd_client::Compare::version(k, op, *n),
                Target::CreateRevision(n) => etcd_client::Compare::create_revision(k, op, *n),
                Target::ModRevision(n) => etcd_client::Compare::mod_revision(k, op, *n),
            }
        })
        .collect();
    etcd_client::Txn::new()
        .when(cmps)
        .and_then(ops(success))
        .or_else(ops(failure))
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

fn kvs_of(kvs: &[etcd_client::KeyValue]) -> Vec<Kv> {
    kvs.iter()
        .map(|kv| {
            Kv::new(
                kv.key(),
                kv.value(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect()
}

impl Output {
    /// A put response as the checker sees it.
    pub fn from_put(r: &etcd_client::PutResponse) -> Output {
        Output::Put {
            revision: header_revision(r.header()),
        }
    }

    /// A range response as the checker sees it.
    pub fn from_get(r: &etcd_client::GetResponse) -> Output {
        Output::Get {
            revision: header_revision(r.header()),
            kvs: kvs_of(r.kvs()),
        }
    }

    /// A delete-range response as the checker sees it.
    pub fn from_delete(r: &etcd_client::DeleteResponse) -> Output {
        Output::Delete {
            revision: header_revision(r.header()),
            deleted: r.deleted(),
        }
    }

    /// Nested txn responses are not modelled; they are mapped to an empty get result, which
    /// the checker rejects.
    pub fn from_txn(r: &etcd_client::TxnResponse) -> Output {
        let results = r
            .op_responses()
            .iter()
            .map(|op| match op {
                etcd_client::TxnOpResponse::Put(_) => TxnResult::Put,
                etcd_client::TxnOpResponse::Get(g) => TxnResult::Get(kvs_of(g.kvs())),
                etcd_client::TxnOpResponse::Delete(d) => TxnResult::Delete(d.deleted()),
                etcd_client::TxnOpResponse::Txn(_) => TxnResult::Get(Vec::new()),
            })
            .collect();
        Output::Txn {
            succeeded: r.succeeded(),
            revision: header_revision(r.header()),
            results,
        }
    }
}
