//! The one walk over txn branches.
//!
//! A txn is a list of compares and two branches of ops; an op of a branch may itself be a txn
//! (etcd allows nesting; the checker's model refuses it when compiling a history). Both forms
//! of a request, [`Input`](crate::Input) as clients send it and the checker's compiled form,
//! implement [`TxnTree`], and every place that looks into a txn's ops goes through it: which
//! branch ran ([`TxnTree::branch`]), and every op of both branches ([`TxnTree::walk`]).

/// A request that may be a txn with branches of requests of the same kind.
pub(crate) trait TxnTree: Sized {
    /// `(success, failure)` of a txn; `None` for any other request.
    fn branches(&self) -> Option<(&[Self], &[Self])>;

    /// The ops a txn runs when its compares came out `succeeded` (none for another request).
    fn branch(&self, succeeded: bool) -> &[Self] {
        match self.branches() {
            Some((success, failure)) => {
                if succeeded {
                    success
                } else {
                    failure
                }
            }
            None => &[],
        }
    }

    /// Calls `f` on this request and then, for a txn, on every op of its success branch and
    /// then of its failure branch, nested txns included (depth first, in order).
    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Self)) {
        f(self);
        if let Some((success, failure)) = self.branches() {
            for op in success.iter().chain(failure) {
                op.walk(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TxnTree;
    use crate::{CmpOp, Compare, Input};

    fn nested() -> Input {
        Input::txn(
            vec![Compare::version("a", CmpOp::Equal, 0)],
            vec![
                Input::put("a", "1"),
                Input::txn(vec![], vec![Input::get("b")], vec![Input::delete("c")]),
            ],
            vec![Input::put("d", "2")],
        )
    }

    #[test]
    fn walk_visits_every_op_of_both_branches_depth_first() {
        let mut seen = Vec::new();
        nested().walk(&mut |op| seen.push(op.to_string()));
        assert_eq!(
            seen,
            [
                nested().to_string(),
                "put a=1".to_string(),
                "txn if [] then [get b] else [delete c]".to_string(),
                "get b".to_string(),
                "delete c".to_string(),
                "put d=2".to_string(),
            ]
        );
        let mut one = Vec::new();
        Input::get("x").walk(&mut |op| one.push(op.clone()));
        assert_eq!(one, [Input::get("x")]);
    }

    #[test]
    fn branch_is_the_one_the_compares_chose() {
        let t = nested();
        assert_eq!(t.branch(true).len(), 2);
        assert_eq!(t.branch(false), [Input::put("d", "2")]);
        assert!(Input::put("a", "1").branch(true).is_empty());
    }
}
