// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import "./OstiumTypes.sol";

/// Testnet faucet. The localnet copies this contract's runtime code to the
/// address the SDK hard-codes for its testnet faucet, so all configuration is
/// immutable (no constructor-initialised storage).
contract OstiumFaucet {
    error NotAllowed();
    error NotGov(address a);
    error NotWhitelisted(address a);
    error WrongParams();

    address public immutable token;
    address public immutable registry;
    uint256 public immutable tokenAmount;
    uint256 public immutable waitTime;

    mapping(address => uint256) public lastRequest;

    constructor(address _registry, address _token, uint256 _amount, uint256 _waitTime) {
        if (_token == address(0) || _amount == 0) revert WrongParams();
        registry = _registry;
        token = _token;
        tokenAmount = _amount;
        waitTime = _waitTime;
    }

    function amount() external view returns (uint256) {
        return tokenAmount;
    }

    function paused() external pure returns (bool) {
        return false;
    }

    function nextRequestTime(address account) public view returns (uint256) {
        uint256 last = lastRequest[account];
        return last == 0 ? 0 : last + waitTime;
    }

    function allowedToRequest(address _address) public view returns (bool) {
        return block.timestamp >= nextRequestTime(_address);
    }

    function requestTokens() external {
        if (!allowedToRequest(msg.sender)) revert NotAllowed();
        lastRequest[msg.sender] = block.timestamp;
        IMintable(token).mint(msg.sender, tokenAmount);
    }
}
