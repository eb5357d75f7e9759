import ScopeGateCore
import ScopeGateStore

enum SQLiteGateStoreForTests {
    static func open(_ path: String) throws -> any GateStore { try SQLiteGateStore(path: path) }
}
