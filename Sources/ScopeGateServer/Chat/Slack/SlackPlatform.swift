import ScopeGateCore

/// Slack as the outbox delivers to it: `chat.postMessage`, then `chat.update` in place.
struct SlackPlatform: ChatPlatform {
    static let name = "slack"
    var name: String { Self.name }

    let api: SlackAPI

    func post(_ content: ApprovalMessageContent, to channel: String) async throws(ChatDeliveryFailure)
        -> (messageID: String, channel: String)
    {
        let body = SlackApprovalMessage(content).body
        let answer = try await api.call(
            "chat.postMessage",
            json: [
                "channel": .string(channel), "text": .string(body.text), "blocks": body.blocks,
                "unfurl_links": false, "unfurl_media": false,
            ])
        guard let ts = answer.ts else { throw .transient("no_ts_in_answer") }
        // A direct message's channel differs from the user id it was sent to: updates go there.
        return (ts, answer.channel ?? channel)
    }

    func remind(messageID: String, in channel: String, with content: ApprovalMessageContent) async throws(ChatDeliveryFailure) {
        // A reply in the message's thread: it notifies the channel's members who follow it, and keeps
        // the channel readable.
        _ = try await api.call(
            "chat.postMessage",
            json: [
                "channel": .string(channel), "thread_ts": .string(messageID), "text": .string(SlackText.escaped(content.reminder)),
                "unfurl_links": false, "unfurl_media": false,
            ])
    }

    var reachesPeopleByEmail: Bool { true }

    func member(byEmail email: String) async throws(ChatDeliveryFailure) -> String? {
        do {
            let answer = try await api.call("users.lookupByEmail", form: [("email", email)])
            guard let user = answer.user, user.deleted != true, user.is_bot != true else { return nil }
            return user.id
        } catch .permanent("users_not_found") {
            return nil
        }
    }

    func notify(_ text: String, to channel: String) async throws(ChatDeliveryFailure) {
        _ = try await api.call(
            "chat.postMessage",
            json: ["channel": .string(channel), "text": .string(SlackText.escaped(text)), "unfurl_links": false, "unfurl_media": false])
    }

    func update(messageID: String, in channel: String, with content: ApprovalMessageContent) async throws(ChatDeliveryFailure) {
        let body = SlackApprovalMessage(content).body
        _ = try await api.call(
            "chat.update",
            json: ["channel": .string(channel), "ts": .string(messageID), "text": .string(body.text), "blocks": body.blocks])
    }
}
