import Foundation
import HummingbirdWSClient
import Logging
import ServiceLifecycle
import Synchronization

/// Slack interactivity over Socket Mode, for a ScopeGate that Slack cannot reach: no inbound URL, only
/// an outbound WebSocket.
///
/// Each connection starts with `apps.connections.open` (app-level token), which returns a single-use
/// `wss://` URL. Slack then sends `hello`, envelopes, and `disconnect` when it wants the app to move
/// to a new connection (`refresh_requested`, `warning`, `link_disabled`). Every envelope is
/// acknowledged at once with its `envelope_id`; an `interactive` one is then handled exactly like a
/// click on the HTTP endpoint, and its `trigger_id` makes Slack's redeliveries harmless. Connection
/// failures are retried with capped exponential backoff; a `disconnect` reconnects at once. Socket Mode
/// messages are not signed: the app-level token that opened the connection authenticates them.
struct SlackSocketMode: Service {
    /// The envelope around everything Slack sends over the socket.
    struct Envelope: Decodable {
        var type: String
        var envelope_id: String?
        var reason: String?
        var retry_attempt: Int?
        var payload: SlackInteractions.Payload?

        enum CodingKeys: String, CodingKey { case type, envelope_id, reason, retry_attempt, payload }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try container.decode(String.self, forKey: .type)
            envelope_id = try container.decodeIfPresent(String.self, forKey: .envelope_id)
            reason = try container.decodeIfPresent(String.self, forKey: .reason)
            retry_attempt = try? container.decodeIfPresent(Int.self, forKey: .retry_attempt)
            // Events that are not interactions carry other payloads; they are acknowledged and ignored.
            payload = try? container.decodeIfPresent(SlackInteractions.Payload.self, forKey: .payload)
        }
    }

    /// `apps.connections.open`, called with the app-level token.
    let connections: SlackAPI
    let interactions: SlackInteractions
    let logger: Logger
    var maximumBackoff: Duration = .seconds(60)

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                var pause: Duration
                do {
                    let answer = try await connections.call("apps.connections.open", form: [])
                    guard let url = answer.url else { throw SlackAPI.Failure.transient("no_url_in_answer") }
                    let greeted = try await session(url: url)
                    failures = greeted ? 0 : failures + 1
                    pause = greeted ? .zero : backoff(failures)
                } catch SlackAPI.Failure.rateLimited(let after) {
                    pause = after
                } catch let failure as SlackAPI.Failure {
                    failures += 1
                    pause = backoff(failures)
                    logger.error(
                        "Slack Socket Mode cannot connect",
                        metadata: ["sg.slack.error": "\(failure.name)", "sg.retry_in": "\(pause)"])
                } catch {
                    failures += 1
                    pause = backoff(failures)
                    logger.warning(
                        "the Slack Socket Mode connection failed",
                        metadata: ["sg.error": "\(type(of: error))", "sg.retry_in": "\(pause)"])
                }
                if pause > .zero { try await Task.sleep(for: pause) }
            }
        }
    }

    private func backoff(_ failures: Int) -> Duration {
        min(.seconds(1 << min(failures, 10)), maximumBackoff)
    }

    /// One connection, until Slack asks to move on or it breaks; returns whether Slack said hello.
    private func session(url: String) async throws -> Bool {
        let greeted = Mutex(false)
        let client = WebSocketClient(
            url: url, configuration: .init(maxFrameSize: 1 << 20, autoPing: .enabled(timePeriod: .seconds(30))),
            logger: logger
        ) { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message,
                    let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(text.utf8))
                else { continue }
                switch envelope.type {
                case "hello":
                    greeted.withLock { $0 = true }
                    logger.info("Slack Socket Mode connected")
                case "disconnect":
                    logger.info("Slack asked to reconnect", metadata: ["sg.reason": "\(envelope.reason ?? "")"])
                    try await outbound.close(.normalClosure, reason: nil)
                    return
                default:
                    guard let id = envelope.envelope_id else { continue }
                    let ack = JSONValue.object([("envelope_id", .string(id))]).encoded()
                    try await outbound.write(.text(String(decoding: ack, as: UTF8.self)))
                    if envelope.type == "interactive", let payload = envelope.payload {
                        Task { await interactions.handle(payload) }
                    }
                }
            }
        }
        try await client.run()
        return greeted.withLock { $0 }
    }
}
