// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// Name -> address registry; the SDK resolves "callbacks" through it.
contract OstiumRegistry {
    error NotGov(address a);
    error NullAddr();

    event ContractRegistered(bytes32 indexed name, address indexed contractAddress);

    address public gov;
    mapping(bytes32 => address) private _contracts;

    constructor() {
        gov = msg.sender;
    }

    function getContractAddress(bytes32 name) external view returns (address) {
        return _contracts[name];
    }

    function registerContract(bytes32 name, address contractAddress) external {
        if (msg.sender != gov) revert NotGov(msg.sender);
        if (contractAddress == address(0)) revert NullAddr();
        _contracts[name] = contractAddress;
        emit ContractRegistered(name, contractAddress);
    }
}
