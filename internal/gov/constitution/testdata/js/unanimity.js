// A unanimity constitution: every active member must vote for; any active
// member voting against rejects. It accepts any proposal and applies
// nothing.

const MEMBERS = "public:coco.gov.members";

export function validate(input) {
  return { valid: true, description: "anything goes" };
}

export function resolve(proposal, proposerId, votes) {
  const active = new Set();
  coco.kv.forEach(MEMBERS, (id, value) => {
    if (JSON.parse(value).status === "Active") active.add(id);
  });
  const counted = votes.filter((v) => active.has(v.member_id));
  if (counted.some((v) => !v.vote)) return "Rejected";
  return counted.length === active.size ? "Accepted" : "Open";
}

export function apply(proposal, proposalId) {}
